"""MentorNet curricula on the Hub and on disk: the curricula shipped with the package (loadable offline by name), the
model card rendered from a MentorNet's config, and saving, loading and pushing a curriculum with its card."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import CommitOperationAdd, HfApi
from transformers import AutoModel, PreTrainedModel

from .configuration_mentornet import MentorNetConfig

if TYPE_CHECKING:
    from .modeling_mentornet import MentorNetModel

__all__ = [
    "SHIPPED_CURRICULA_DIR",
    "load_curriculum",
    "model_card",
    "push_curriculum_to_hub",
    "resolve_curriculum_path",
    "check_curriculum_directory",
    "save_curriculum",
    "shipped_curricula",
]

SHIPPED_CURRICULA_DIR = Path(__file__).parent / "pretrained"
MODEL_CARD_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
MODEL_CARD_TAGS = ["mentornet", "curriculum-learning", "noisy-labels"]


def shipped_curricula() -> list[str]:
    """Names of the curricula that ship with the package, loadable offline by name."""
    return sorted(p.name for p in SHIPPED_CURRICULA_DIR.iterdir() if (p / "config.json").is_file())


def resolve_curriculum_path(name_or_path: str | os.PathLike) -> str | os.PathLike:
    """A local path wins, then a shipped curriculum name; anything else is passed on as a Hub id."""
    if os.path.isdir(name_or_path):
        return name_or_path
    shipped = SHIPPED_CURRICULA_DIR / str(name_or_path)
    if (shipped / "config.json").is_file():
        return shipped
    return name_or_path


def card_value(value: Any) -> str:
    # Floats with 4 significant digits, so that the card and config.json agree at a glance.
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value)}`"
    return str(value)


def model_card(config: MentorNetConfig, model_id: str | None = None, tags: list[str] | None = None) -> str:
    """Render the model card (`README.md`) of a MentorNet from its config: what curriculum it is, how it was
    learned, the training settings it recommends, usage and citation.

    Args:
        config (`MentorNetConfig`): the MentorNet's config, provenance included.
        model_id (`str`, *optional*): the name to load it by in the usage snippet (a Hub id or a shipped name);
            defaults to the curriculum name.
        tags (`list[str]`, *optional*): Hub tags added to `mentornet`, `curriculum-learning`, `noisy-labels`.
    """
    name = config.curriculum_name or "unnamed"
    if config.curriculum_kind == "predefined":
        kind_description = (
            f"A MentorNet learned to approximate the predefined curriculum `{name}` of `hf_mentornet.curricula` "
            "(paper Sec. 3.1) by minimising the mean squared error to its weights."
        )
    elif config.curriculum_kind == "data-driven":
        kind_description = (
            "A data-driven curriculum (paper Sec. 3.1): learned by sigmoid cross-entropy to tell samples with a "
            "correct label (target weight 1) from samples with a corrupted one (target 0), from a student's records."
        )
    else:
        kind_description = "Not learned: the weights of a freshly initialised MentorNet."
    learned_from = "\n".join(f"- {key}: {card_value(value)}" for key, value in config.learned_from.items())
    source = config.learned_from.get("source_dataset")
    # Hub metadata names a Hub dataset, never a local path.
    datasets = f"datasets:\n- {source}\n" if isinstance(source, str) and HUB_ID.fullmatch(source) else ""
    burn_in = f"{config.burn_in_fraction:.0%} of training" if config.burn_in_fraction else "none"
    return Template(MODEL_CARD_TEMPLATE.read_text(encoding="utf-8")).substitute(
        datasets=datasets,
        tags="\n".join(f"- {tag}" for tag in dict.fromkeys(MODEL_CARD_TAGS + list(tags or []))),
        curriculum_name=name,
        curriculum_kind=config.curriculum_kind or "untrained",
        curriculum_params=card_value(config.curriculum_params) if config.curriculum_params else "defaults",
        kind_description=kind_description,
        learned_from=learned_from or "- not recorded",
        loss_p_percentile=card_value(config.loss_p_percentile),
        loss_moving_average_decay=card_value(config.loss_moving_average_decay),
        burn_in=burn_in,
        fixed_epoch_after_burn_in=config.fixed_epoch_after_burn_in,
        example_dropout_schedule=card_value(config.example_dropout_schedule or "none"),
        num_steps=config.num_steps,
        hidden_size=config.hidden_size,
        label_vocab_size=config.label_vocab_size,
        label_embedding_size=config.label_embedding_size,
        num_epochs=config.num_epochs,
        epoch_embedding_size=config.epoch_embedding_size,
        epoch_embedding="trained" if config.trainable_epoch_embedding else "frozen at its random initialisation",
        fc_hidden_size=config.fc_hidden_size,
        model_id=model_id or name,
    )


def push_curriculum_to_hub(
    model: PreTrainedModel,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
) -> Any:
    """Upload a MentorNet (`config.json`, `model.safetensors`) and its model card (`README.md`, rendered from the
    config by [`model_card`], with `tags` added) to the Hub. Arguments as
    [`~transformers.utils.PushToHubMixin.push_to_hub`]; returns the `CommitInfo`."""
    api = HfApi(library_name="hf_mentornet")
    repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory, max_shard_size=max_shard_size)
        Path(directory, "README.md").write_text(model_card(model.config, repo_id, tags), encoding="utf-8")
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(directory, name))
            for name in sorted(os.listdir(directory))
        ]
        if revision is not None and not revision.startswith("refs/pr"):
            api.create_branch(repo_id=repo_id, branch=revision, token=token, exist_ok=True)
        return api.create_commit(
            repo_id=repo_id,
            operations=operations,
            commit_message=commit_message or "Upload MentorNet",
            commit_description=commit_description,
            token=token,
            revision=revision,
            create_pr=create_pr,
        )


def check_curriculum_directory(directory: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse to save a curriculum into `directory` when it exists and is not empty, unless `overwrite`: a user's
    files are never replaced by surprise. Call it before the work that produces the curriculum."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`output_dir`={os.fspath(directory)!r} is a file, not a directory; choose a directory.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(
            f"`output_dir`={os.fspath(directory)!r} is not empty ({', '.join(sorted(p.name for p in path.iterdir())[:5])}"
            "); a curriculum is saved only into a new or empty directory. Choose another one, or pass "
            "`overwrite=True` (`--overwrite_output_dir` on the command line) to replace the curriculum files there."
        )


def save_curriculum(
    model: MentorNetModel, directory: str | os.PathLike, model_id: str | None = None, overwrite: bool = False
) -> Path:
    """Write a MentorNet (config.json, model.safetensors and its model card, README.md) to `directory`.

    The files are written into a staging directory beside it and each moved into place, so an interrupted save never
    leaves a half-written file. Only those three files are written: nothing else in `directory` is touched. A
    directory that is not empty is refused unless `overwrite`, and a MentorNet whose parameters are not finite (a
    failed learning run) is never saved.

    Args:
        model: the MentorNet.
        directory: where it goes.
        model_id: the name its card's usage snippet loads it by (a Hub id or a shipped name); defaults to
            `directory`.
        overwrite: write into a non-empty `directory`, replacing its config.json, model.safetensors and README.md.
    """
    broken = [name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()]
    if broken:
        raise ValueError(
            f"The MentorNet has NaN or inf parameters ({', '.join(broken[:3])}), so it is not saved: the learning "
            "that produced it diverged. Check the curriculum's parameters and learn it again (e.g. with a lower "
            "learning rate)."
        )
    check_curriculum_directory(directory, overwrite)
    target = Path(directory).absolute()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging, repo_id=model_id or os.fspath(directory))
        for path in staging.iterdir():
            # mkdtemp and the safetensors writer make owner-only files; a curriculum is meant to be shared.
            path.chmod(0o644)
            os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_curriculum(curriculum: MentorNetModel | str | os.PathLike, **kwargs: Any) -> MentorNetModel:
    """Load a MentorNet from a model, a local directory, a shipped curriculum name or a Hub id.

    Raises a `ValueError` that lists the shipped curricula when the name cannot be loaded (for example a Hub id
    with the Hub out of reach or `HF_HUB_OFFLINE=1`).
    """
    if isinstance(curriculum, PreTrainedModel):
        if not isinstance(curriculum.config, MentorNetConfig):
            raise TypeError(
                f"`curriculum` is a {type(curriculum).__name__}, not a MentorNetModel: pass a MentorNet, its "
                "directory, a shipped name or a Hub id."
            )
        return curriculum
    try:
        # AutoModel (MentorNetConfig -> MentorNetModel, registered by the package) keeps this module free of the
        # modeling module, which imports it.
        model = AutoModel.from_pretrained(resolve_curriculum_path(curriculum), **kwargs)
    except Exception as error:  # a damaged local curriculum: safetensors, shape and config errors alike
        if not os.path.isfile(os.path.join(os.fspath(curriculum), "config.json")):
            raise _unloadable_curriculum_error(curriculum, error) from error
        raise ValueError(
            f"The curriculum in {os.fspath(curriculum)!r} cannot be loaded ({type(error).__name__}: "
            f"{str(error)[:300]}): its model.safetensors is damaged or does not match its config.json. Save it again "
            "(`save_curriculum`), or load another curriculum."
        ) from error
    if not isinstance(model.config, MentorNetConfig):
        raise ValueError(f"{str(curriculum)!r} is a {type(model).__name__}, not a MentorNet (model_type 'mentornet').")
    return model


def _unloadable_curriculum_error(curriculum: str | os.PathLike, error: BaseException) -> ValueError:
    return ValueError(
        f"Cannot load the curriculum {str(curriculum)!r}: it is not a local directory with a config.json, not a "
        f"shipped curriculum ({', '.join(shipped_curricula())}), and loading it from the Hub failed ({error}). "
        "Pass a shipped name, a directory written by `save_pretrained`, or a Hub id while online "
        "(download it once, then it loads from the cache with HF_HUB_OFFLINE=1)."
    )
