"""MentorNet (Jiang et al., ICML 2018, Fig. 1) as a transformers model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import torch
from huggingface_hub import CommitOperationAdd, HfApi
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_mentornet import MentorNetConfig

__all__ = [
    "MentorNetModel",
    "MentorNetOutput",
    "MentorNetPreTrainedModel",
    "SHIPPED_CURRICULA_DIR",
    "load_curriculum",
    "save_curriculum",
    "model_card",
    "shipped_curricula",
]

SHIPPED_CURRICULA_DIR = Path(__file__).parent / "pretrained"
MODEL_CARD_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
MODEL_CARD_TAGS = ["mentornet", "curriculum-learning", "noisy-labels"]


def shipped_curricula() -> list[str]:
    """Names of the curricula that ship with the package, loadable offline by name."""
    return sorted(p.name for p in SHIPPED_CURRICULA_DIR.iterdir() if (p / "config.json").is_file())


def _resolve(name_or_path: str | os.PathLike) -> str | os.PathLike:
    """A local path wins, then a shipped curriculum name; anything else is passed on as a Hub id."""
    if os.path.isdir(name_or_path):
        return name_or_path
    shipped = SHIPPED_CURRICULA_DIR / str(name_or_path)
    if (shipped / "config.json").is_file():
        return shipped
    return name_or_path


def _card_value(value: Any) -> str:
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
    learned_from = "\n".join(f"- {key}: {_card_value(value)}" for key, value in config.learned_from.items())
    burn_in = f"{config.burn_in_fraction:.0%} of training" if config.burn_in_fraction else "none"
    return Template(MODEL_CARD_TEMPLATE.read_text(encoding="utf-8")).substitute(
        tags="\n".join(f"- {tag}" for tag in dict.fromkeys(MODEL_CARD_TAGS + list(tags or []))),
        curriculum_name=name,
        curriculum_kind=config.curriculum_kind or "untrained",
        curriculum_params=_card_value(config.curriculum_params) if config.curriculum_params else "defaults",
        kind_description=kind_description,
        learned_from=learned_from or "- not recorded",
        loss_p_percentile=_card_value(config.loss_p_percentile),
        loss_moving_average_decay=_card_value(config.loss_moving_average_decay),
        burn_in=burn_in,
        fixed_epoch_after_burn_in=config.fixed_epoch_after_burn_in,
        example_dropout_schedule=_card_value(config.example_dropout_schedule or "none"),
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


@dataclass
class MentorNetOutput(ModelOutput):
    """
    Output of [`MentorNetModel`].

    Args:
        logits (`torch.FloatTensor` of shape `(batch_size,)`): the pre-sigmoid sample weights.
        weights (`torch.FloatTensor` of shape `(batch_size,)`): the sample weights `sigmoid(logits)`, in [0, 1].
    """

    logits: torch.FloatTensor | None = None
    weights: torch.FloatTensor | None = None


class MentorNetPreTrainedModel(PreTrainedModel):
    config_class = MentorNetConfig
    base_model_prefix = "mentornet"
    main_input_name = "loss"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Glorot-uniform weights and zero biases, as TensorFlow's defaults in the released implementation.
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)  # forget bias 0, as the released code
        elif isinstance(module, nn.Embedding):
            init.xavier_uniform_(module.weight)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """As [`PreTrainedModel.from_pretrained`], and also takes the name of a shipped curriculum
        (see [`shipped_curricula`]), which loads offline."""
        return super().from_pretrained(_resolve(pretrained_model_name_or_path), *args, **kwargs)


class MentorNetModel(MentorNetPreTrainedModel):
    r"""
    MentorNet: maps the features of each sample to a weight in [0, 1].

    Per sample: a bidirectional LSTM reads the `[loss, loss_diff]` history (`config.num_steps` steps, the last one
    current) and its two final hidden states are concatenated with a label embedding and an epoch (training
    progress) embedding; `fc1` (tanh) and `fc2` give a logit and the weight is its sigmoid.

    Unlike the authors' released code, whose output bias is added to the `fc2` weight matrix instead of to the
    output (so it never acts as a bias), `fc2` here has an ordinary bias.
    """

    def __init__(self, config: MentorNetConfig) -> None:
        super().__init__(config)
        self.lstm = nn.LSTM(input_size=2, hidden_size=config.hidden_size, batch_first=True, bidirectional=True)
        self.label_embedding = nn.Embedding(config.label_vocab_size, config.label_embedding_size)
        self.epoch_embedding = nn.Embedding(config.num_epochs, config.epoch_embedding_size)
        self.epoch_embedding.weight.requires_grad_(config.trainable_epoch_embedding)
        features = 2 * config.hidden_size + config.label_embedding_size + config.epoch_embedding_size
        self.fc1 = nn.Linear(features, config.fc_hidden_size)
        self.fc2 = nn.Linear(config.fc_hidden_size, 1)
        self.post_init()

    def _check_inputs(
        self, loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor
    ) -> None:
        steps = self.config.num_steps
        for name, value in (("loss", loss), ("loss_diff", loss_diff)):
            if not value.is_floating_point():
                raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {value.dtype}.")
            if value.dim() != 2 or value.shape[1] != steps:
                raise ValueError(
                    f"`{name}` has shape {tuple(value.shape)}; this MentorNet reads a history of num_steps={steps}, "
                    f"so pass shape (batch_size, {steps})" + (" or (batch_size,)." if steps == 1 else ".")
                )
        if loss_diff.shape != loss.shape:
            raise ValueError(f"`loss_diff` shape {tuple(loss_diff.shape)} differs from `loss` {tuple(loss.shape)}.")
        ranges = (("epoch", epoch, self.config.num_epochs), ("label", label, self.config.label_vocab_size))
        for name, value, _ in ranges:
            if value.is_floating_point() or value.is_complex():
                raise TypeError(f"`{name}` must be an integer tensor, got dtype {value.dtype}.")
            if value.shape != loss.shape[:1]:
                raise ValueError(f"`{name}` has shape {tuple(value.shape)}, expected ({loss.shape[0]},).")
        # The value checks in one reduction: this runs every training step, and each separate check would be a
        # host sync on a GPU. Which input is at fault is worked out only when one is.
        valid = torch.isfinite(loss).all() & torch.isfinite(loss_diff).all()
        for _, value, size in ranges:
            valid &= ((value >= 0) & (value < size)).all()
        if valid:
            return
        for name, value in (("loss", loss), ("loss_diff", loss_diff)):
            if not torch.isfinite(value).all():
                raise ValueError(f"`{name}` contains NaN or inf; check the student's loss before weighting it.")
        for name, value, size in ranges:
            if value.min() < 0 or value.max() >= size:
                raise ValueError(
                    f"`{name}` values must be in 0..{size - 1}, got {int(value.min())}..{int(value.max())}"
                    + (
                        ": training progress is floor(100 * step / max_steps), clipped at 99."
                        if name == "epoch"
                        else "."
                    )
                )

    def forward(
        self,
        loss: torch.Tensor,
        loss_diff: torch.Tensor,
        epoch: torch.Tensor | int,
        label: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> MentorNetOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            loss (`torch.FloatTensor` of shape `(batch_size,)` or `(batch_size, num_steps)`):
                The student's per-sample loss (history, oldest first).
            loss_diff (`torch.FloatTensor`, same shape as `loss`):
                `loss` minus the moving average of the p-th percentile of the mini-batch losses.
            epoch (`torch.LongTensor` of shape `(batch_size,)`, or `int`):
                Training progress as an integer percentage in `[0, config.num_epochs)`.
            label (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Label-embedding index; defaults to 0 for every sample, as the released code.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # 1-D features are one step; with a longer history they fail the shape check with the shape as given.
        if loss.dim() == 1 and self.config.num_steps == 1:
            loss, loss_diff = loss.unsqueeze(1), loss_diff.unsqueeze(1)
        if isinstance(epoch, int):
            epoch = torch.full(loss.shape[:1], epoch, dtype=torch.long, device=loss.device)
        if label is None:
            label = torch.zeros(loss.shape[:1], dtype=torch.long, device=loss.device)
        self._check_inputs(loss, loss_diff, epoch, label)

        dtype = self.fc1.weight.dtype
        _, (hidden, _) = self.lstm(torch.stack([loss, loss_diff], dim=-1).to(dtype))
        # hidden: (2, batch, hidden_size), the final states of the forward and backward directions.
        lstm_features = hidden.transpose(0, 1).reshape(loss.shape[0], -1)
        features = torch.cat([self.label_embedding(label), self.epoch_embedding(epoch), lstm_features], dim=-1)
        logits = self.fc2(torch.tanh(self.fc1(features))).squeeze(-1)
        weights = torch.sigmoid(logits)
        if not return_dict:
            return logits, weights
        return MentorNetOutput(logits=logits, weights=weights)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """As [`PreTrainedModel.save_pretrained`], and also writes the model card, `README.md` (see
        [`model_card`]), whose usage snippet loads from `repo_id` if given, else from `save_directory`. With
        `push_to_hub=True`, the model is pushed by [`~MentorNetModel.push_to_hub`] (to `repo_id`, defaulting to the
        directory's name), so the card goes with it."""
        push_to_hub = kwargs.pop("push_to_hub", False)
        repo_id = kwargs.pop("repo_id", None)
        super().save_pretrained(save_directory, *args, **kwargs)
        model_id = repo_id or os.fspath(save_directory)
        Path(save_directory, "README.md").write_text(model_card(self.config, model_id), encoding="utf-8")
        if push_to_hub:
            self.push_to_hub(repo_id or Path(save_directory).name, token=kwargs.get("token"))

    def push_to_hub(
        self,
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
        """Upload the MentorNet (`config.json`, `model.safetensors`) and its model card (`README.md`) to the Hub.

        Arguments as [`~transformers.utils.PushToHubMixin.push_to_hub`]. Overridden because the inherited method
        replaces `README.md` with the card already on the Hub or a generic one; here the card is always rendered
        from the config (see [`model_card`]), with `tags` added. Returns the `CommitInfo`.
        """
        api = HfApi(library_name="hf_mentornet")
        repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as directory:
            self.save_pretrained(directory, max_shard_size=max_shard_size)
            Path(directory, "README.md").write_text(model_card(self.config, repo_id, tags), encoding="utf-8")
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


def save_curriculum(model: MentorNetModel, directory: str | os.PathLike, model_id: str | None = None) -> Path:
    """Write a MentorNet (config.json, model.safetensors and its model card) to `directory` atomically: into a
    staging directory beside it, then moved into place, so an interrupted save never leaves a half-written
    curriculum (an existing `directory` is replaced).

    Args:
        model: the MentorNet.
        directory: where it goes.
        model_id: the name its card's usage snippet loads it by (a Hub id or a shipped name); defaults to
            `directory`.
    """
    target = Path(directory).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model.save_pretrained(staging, repo_id=model_id or os.fspath(directory))
    # mkdtemp and the safetensors writer make owner-only files; a curriculum is meant to be shared.
    staging.chmod(0o755)
    for path in staging.iterdir():
        path.chmod(0o644)
    # A directory cannot be renamed over a non-empty one: move the old one aside first.
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent)) if target.exists() else None
    if old:
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old:
        shutil.rmtree(old)
    return target


def load_curriculum(curriculum: MentorNetModel | str | os.PathLike, **kwargs: Any) -> MentorNetModel:
    """Load a MentorNet from a model, a local directory, a shipped curriculum name or a Hub id.

    Raises a `ValueError` that lists the shipped curricula when the name cannot be loaded (for example a Hub id
    with the Hub out of reach or `HF_HUB_OFFLINE=1`).
    """
    if isinstance(curriculum, MentorNetModel):
        return curriculum
    try:
        return MentorNetModel.from_pretrained(curriculum, **kwargs)
    except OSError as error:
        raise ValueError(
            f"Cannot load the curriculum {str(curriculum)!r}: it is not a local directory with a config.json, not a "
            f"shipped curriculum ({', '.join(shipped_curricula())}), and loading it from the Hub failed ({error}). "
            "Pass a shipped name, a directory written by `save_pretrained`, or a Hub id while online "
            "(download it once, then it loads from the cache with HF_HUB_OFFLINE=1)."
        ) from error
