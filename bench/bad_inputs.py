"""Bad inputs and faults, tried as a careful user would, and how each ended.

Every case is a small, real call of the library (noise injection, the trainers, learning, the Hub helpers, the CLI,
the recipes) with one bad input or fault, and what it must give: a clear error or the correct behaviour. An
outcome is

- "clear error": an exception raised by this library's own code (the innermost traceback frame is in
  `hf_mentornet/` or `recipes/`, or argparse for a command-line flag) whose message names the argument;
- "correct": no error, and the case's check of the result holds;
- "other": anything else (an error from deep inside torch / transformers / datasets, a wrong result, silence
  where an error was due).

A user's file placed beside each case's outputs is checked byte for byte after it. Command (repository root):

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python bench/bad_inputs.py --output bench/results/bad_inputs.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "recipes"))

import cifar  # noqa: E402
import webvision  # noqa: E402

from hf_mentornet import (  # noqa: E402
    MentorNetConfig,
    MentorNetModel,
    build_student,
    cli,
    inject_label_noise,
    load_curriculum,
    save_curriculum,
    train_method,
    with_verified_labels,
)
from hf_mentornet.baselines import CoTeachingConfig, CoTeachingPair, CoTeachingTrainer  # noqa: E402
from hf_mentornet.curricula import curriculum_weights  # noqa: E402
from hf_mentornet.data import MentorNetCollator, image_transforms, with_image_transform  # noqa: E402
from hf_mentornet.learning import learn_from_records, learn_predefined  # noqa: E402
from hf_mentornet.mentormix import MentorMixConfig, MentorMixTrainer  # noqa: E402
from hf_mentornet.trainer import MentorNetTrainer  # noqa: E402
from hf_mentornet.training_args import MentorNetTrainingArguments  # noqa: E402
from hf_mentornet.weighted_trainer import WeightedLossArguments, WeightedLossTrainer  # noqa: E402

OURS = (str(REPOSITORY / "hf_mentornet"), str(REPOSITORY / "recipes"), "argparse.py")
CASES: list[tuple[str, str, str, str, Callable[[Path], object]]] = []


def case(area: str, name: str, expect: str, names: str = ""):
    """Register a case: `expect` is "error" (a clear error naming `names`) or "correct" (the function returns True)."""

    def register(function: Callable[[Path], object]) -> Callable[[Path], object]:
        CASES.append((area, name, expect, names, function))
        return function

    return register


# ---- Data and students built here ----


def digits(size: int = 64, noise: float = 0.0) -> datasets.Dataset:
    data = load_digits()
    images = (data.images[:size] / 16.0).astype(np.float32)[:, None]
    labels = data.target[:size].astype(np.int64)
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(size) < noise, (labels + 1) % 10, labels)
    return datasets.Dataset.from_dict(
        {"pixel_values": images, "labels": noisy, "clean_label": labels, "sample_index": np.arange(size)}
    ).with_format("torch")


def image_dataset(size: int = 40) -> datasets.Dataset:
    data = load_digits()
    images = [(image * 255 / 16).astype(np.uint8) for image in data.images[:size]]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    return datasets.Dataset.from_dict({"image": images, "label": data.target[:size].tolist()}, features=features)


def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([torch.as_tensor(example[key]) for example in examples]) for key in examples[0]}


class MLP(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(channels, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 10))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values)


def settings(tmp: Path, **overrides) -> dict:
    return {
        "output_dir": str(tmp / "run"),
        "per_device_train_batch_size": 16,
        "max_steps": 3,
        "learning_rate": 0.05,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        **overrides,
    }


def mentornet_trainer(tmp: Path, train_dataset=None, curriculum=None, **overrides) -> MentorNetTrainer:
    args = MentorNetTrainingArguments(**settings(tmp, **overrides))
    torch.manual_seed(0)  # the same curriculum every time: a resume must not see another one
    curriculum = curriculum or MentorNetModel(MentorNetConfig())
    dataset = digits() if train_dataset is None else train_dataset
    return MentorNetTrainer(
        model=MLP(), args=args, data_collator=collate, train_dataset=dataset, curriculum=curriculum
    )


def plain_trainer(tmp: Path, train_dataset=None, **overrides) -> WeightedLossTrainer:
    args = WeightedLossArguments(**settings(tmp, **overrides))
    dataset = digits() if train_dataset is None else train_dataset
    return WeightedLossTrainer(model=MLP(), args=args, data_collator=collate, train_dataset=dataset)


def parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def trains(trainer: WeightedLossTrainer) -> bool:
    before = parameters(trainer.model).clone()
    trainer.train()
    after = parameters(trainer.model)
    return bool(torch.isfinite(after).all()) and not torch.equal(before, after)


def saved_curriculum(tmp: Path) -> Path:
    path = tmp / "curriculum"
    save_curriculum(MentorNetModel(MentorNetConfig()), path)
    return path


def checkpointed(tmp: Path, **overrides) -> Path:
    mentornet_trainer(tmp, max_steps=2, save_strategy="steps", save_steps=2, **overrides).train()
    return tmp / "run" / "checkpoint-2"


# ---- Noise injection ----

LABELS = datasets.Dataset.from_dict({"label": [i % 4 for i in range(40)]})

for value in ("0.2", -0.1, 1.5, math.nan, True, None):
    case("noise", f"noise_rate={value!r}", "error", "noise_rate")(lambda tmp, v=value: inject_label_noise(LABELS, v))
for value in (-1, 0.5, "0"):
    case("noise", f"seed={value!r}", "error", "seed")(lambda tmp, v=value: inject_label_noise(LABELS, 0.2, seed=v))
for value in (0, 1, 2.5):
    case("noise", f"num_classes={value!r}", "error", "num_classes")(
        lambda tmp, v=value: inject_label_noise(LABELS, 0.2, num_classes=v)
    )
case("noise", "num_classes below the largest label", "error", "num_classes")(
    lambda tmp: inject_label_noise(LABELS, 0.2, num_classes=3)
)
case("noise", "label_column missing", "error", "label_column")(
    lambda tmp: inject_label_noise(LABELS, 0.2, label_column="target")
)
case("noise", "string labels without a ClassLabel", "error", "label")(
    lambda tmp: inject_label_noise(datasets.Dataset.from_dict({"label": ["cat", "dog"] * 5}), 0.2)
)
case("noise", "float labels", "error", "label")(
    lambda tmp: inject_label_noise(datasets.Dataset.from_dict({"label": [0.5, 1.0] * 5}), 0.2)
)
case("noise", "a label of -1 (unlabelled rows)", "error", "label")(
    lambda tmp: inject_label_noise(datasets.Dataset.from_dict({"label": [0, 1, -1, 2]}), 0.2)
)
case("noise", "missing labels (None)", "error", "label")(
    lambda tmp: inject_label_noise(datasets.Dataset.from_dict({"label": [0, 1, None, 2]}), 0.2)
)
case("noise", "an empty dataset", "error", "dataset")(lambda tmp: inject_label_noise(LABELS.select([]), 0.2))
case("noise", "a list instead of a dataset", "error", "dataset")(lambda tmp: inject_label_noise([0, 1, 2], 0.2))
case("noise", "unknown noise_type", "error", "noise_type")(lambda tmp: inject_label_noise(LABELS, 0.2, "flip"))
case("noise", "transition matrix of the wrong shape", "error", "transition_matrix")(
    lambda tmp: inject_label_noise(LABELS, 0.2, "transition", transition_matrix=np.eye(3))
)
case("noise", "transition matrix not row-stochastic", "error", "transition_matrix")(
    lambda tmp: inject_label_noise(LABELS, 0.2, "transition", transition_matrix=np.full((4, 4), 0.5))
)
case("noise", "transition matrix with uniform noise", "error", "transition_matrix")(
    lambda tmp: inject_label_noise(LABELS, 0.2, transition_matrix=np.eye(4))
)
case("noise", "symmetric noise on a stream", "error", "symmetric")(
    lambda tmp: inject_label_noise(LABELS.to_iterable_dataset(), 0.2, "symmetric", num_classes=4)
)
case("noise", "a split that is not there", "error", "splits")(
    lambda tmp: inject_label_noise(datasets.DatasetDict({"test": LABELS}), 0.2)
)
case("noise", "a dataset's own clean_label", "error", "clean_label")(
    lambda tmp: inject_label_noise(LABELS.add_column("clean_label", [0] * 40), 0.0)
)
case("noise", "a dataset's own is_noisy", "error", "is_noisy")(
    lambda tmp: inject_label_noise(LABELS.add_column("is_noisy", [False] * 40), 0.2)
)
case("noise", "a repeated own sample_index", "error", "sample_index")(
    lambda tmp: inject_label_noise(LABELS.add_column("sample_index", [0] * 40), 0.2)
)
case("noise", "a float own sample_index", "error", "sample_index")(
    lambda tmp: inject_label_noise(LABELS.add_column("sample_index", [0.5] * 40), 0.2)
)


@case("noise", "noise drawn again on our own output", "correct")
def _(tmp):
    once = inject_label_noise(LABELS, 0.6, seed=0)
    return inject_label_noise(once, 0.0)["label"] == LABELS["label"]


@case("noise", "own clean_label with from_clean_label=True", "correct")
def _(tmp):
    told = inject_label_noise(LABELS.add_column("clean_label", [1] * 40), 0.0, from_clean_label=True)
    return told["label"] == [1] * 40 and not any(told["is_noisy"])


@case("noise", "a 2-shard stream split over 2 nodes", "correct")
def _(tmp):
    from datasets.distributed import split_dataset_by_node

    stream = inject_label_noise(LABELS.to_iterable_dataset(num_shards=2), 0.3, num_classes=4)
    parts = [[x["sample_index"] for x in split_dataset_by_node(stream, rank=r, world_size=2)] for r in range(2)]
    return len(set(parts[0]) | set(parts[1])) == 40


@case("noise", "noise_rate=0 reports no corruption", "correct")
def _(tmp):
    return not any(inject_label_noise(LABELS, 0.0)["is_noisy"])


# ---- The data pipeline ----

case("data", "float labels in the collator", "error", "labels")(
    lambda tmp: MentorNetCollator()([{"labels": 0.7}, {"labels": 1.0}])
)
case("data", "image_transforms for a non-model", "error", "model")(lambda tmp: image_transforms(object()))
case("data", "in_chans=2", "error", "in_chans")(lambda tmp: image_transforms(MLP(), in_chans=2))
case("data", "with_image_transform with a missing image column", "error", "image_column")(
    lambda tmp: with_image_transform(image_dataset(), lambda image: image, image_column="picture")[0]
)


# ---- The trainers ----

IMAGES = torch.zeros(2, 1, 8, 8)
for name, batch, names in (
    ("float labels in a batch", {"pixel_values": IMAGES, "labels": torch.tensor([0.5, 1.0])}, "labels"),
    ("labels beyond the student's outputs", {"pixel_values": IMAGES, "labels": torch.tensor([3, 12])}, "labels"),
    ("a label of -1", {"pixel_values": IMAGES, "labels": torch.tensor([3, -1])}, "labels"),
    ("a batch without labels", {"pixel_values": IMAGES}, "labels"),
    ("a batch without pixel_values", {"image": IMAGES, "labels": torch.tensor([1, 2])}, "pixel_values"),
    ("3-channel images, 1-channel student", {"pixel_values": torch.zeros(2, 3, 8, 8), "labels": torch.ones(2).long()}, "channels"),
):  # fmt: skip
    case("trainer", name, "error", names)(lambda tmp, b=batch: plain_trainer(tmp).compute_loss(MLP(), b))
case("trainer", "repeated sample_index with label_issues", "error", "sample_index")(
    lambda tmp: mentornet_trainer(
        tmp, train_dataset=datasets.concatenate_datasets([digits(32), digits(32)]), label_issues=True
    )
)
case("trainer", "no sample_index with record_student", "error", "sample_index")(
    lambda tmp: mentornet_trainer(tmp, train_dataset=digits().remove_columns("sample_index"), record_student=True)
)
case("trainer", "closed-form without sample_index", "error", "sample_index")(
    lambda tmp: mentornet_trainer(
        tmp, train_dataset=digits().remove_columns("sample_index"), curriculum_type="closed-form"
    ).train()
)
case("trainer", "an empty train_dataset", "error", "train_dataset")(
    lambda tmp: plain_trainer(tmp, train_dataset=digits().select([]))
)
case("trainer", "label_issues_dataset without sample_index", "error", "sample_index")(
    lambda tmp: MentorNetTrainer(
        MLP(),
        MentorNetTrainingArguments(**settings(tmp), label_issues=True),
        data_collator=collate,
        train_dataset=digits(),
        label_issues_dataset=digits().remove_columns("sample_index"),
    )  # fmt: skip
)
case("trainer", "curriculum_update_dataset without clean_label", "error", "clean_label")(
    lambda tmp: MentorNetTrainer(
        MLP(),
        MentorNetTrainingArguments(**settings(tmp), curriculum_update_at=[0.5]),
        data_collator=collate,
        train_dataset=digits(),
        curriculum_update_dataset=digits().remove_columns("clean_label"),
    )  # fmt: skip
)


def on_policy(tmp: Path, trusted: datasets.Dataset, train: datasets.Dataset | None = None) -> MentorNetTrainer:
    return MentorNetTrainer(
        MLP(),
        MentorNetTrainingArguments(**settings(tmp), burn_in_fraction=0.5),
        data_collator=collate,
        train_dataset=digits(noise=0.4) if train is None else train,
        trusted_dataset=trusted,
    )


case("trainer", "trusted_dataset without clean labels", "error", "trusted_dataset")(
    lambda tmp: on_policy(tmp, digits(noise=0.4).select(range(16)).map(lambda row: {"clean_label": -1}))
)
case("trainer", "trusted_dataset of one class", "error", "trusted")(
    lambda tmp: on_policy(tmp, digits(noise=0.4).filter(lambda row: int(row["clean_label"]) == 3))
)
case("trainer", "trusted_dataset with no corrupted sample", "error", "trusted")(
    lambda tmp: on_policy(tmp, digits(noise=0.4).filter(lambda row: int(row["labels"]) == int(row["clean_label"])))
)
case("trainer", "trusted_dataset larger than the training set", "error", "trusted_dataset")(
    lambda tmp: on_policy(tmp, digits(size=128, noise=0.4))
)
case("trainer", "trusted_dataset whose rows are not in the training set", "error", "training set")(
    lambda tmp: on_policy(
        tmp, digits(noise=0.4).select(range(16)).map(lambda row: {"sample_index": int(row["sample_index"]) + 1000})
    )
)
case("trainer", "trusted_dataset with curriculum_update_dataset", "error", "curriculum_update_dataset")(
    lambda tmp: MentorNetTrainer(
        MLP(),
        MentorNetTrainingArguments(**settings(tmp), curriculum_update_at=[0.5]),
        data_collator=collate,
        train_dataset=digits(noise=0.4),
        trusted_dataset=digits(noise=0.4).select(range(32)),
        curriculum_update_dataset=digits(noise=0.4),
    )  # fmt: skip
)
case("trainer", "compute_loss_func", "error", "compute_loss_func")(
    lambda tmp: WeightedLossTrainer(MLP(), WeightedLossArguments(**settings(tmp)), compute_loss_func=lambda *a: 0)
)
case("trainer", "a stream without max_steps", "error", "max_steps")(
    lambda tmp: plain_trainer(tmp, train_dataset=digits().to_iterable_dataset(), max_steps=-1)
)
case("trainer", "args of another trainer", "error", "args")(
    lambda tmp: MentorNetTrainer(MLP(), WeightedLossArguments(**settings(tmp)))
)
case("trainer", "co-teaching without a pair", "error", "model")(
    lambda tmp: CoTeachingTrainer(MLP(), CoTeachingConfig(**settings(tmp), co_teaching_forget_rate=0.2))
)
for name, value in (
    ("lr_decay_at", [0.7, 0.5]),
    ("lr_decay_at", [1.5]),
    ("lr_decay_factor", 0.0),
    ("loss_p_percentile", 0.0),
    ("loss_p_percentile", 1.5),
    ("loss_moving_average_decay", 1.0),
    ("burn_in_fraction", 1.0),
    ("example_dropout_schedule", "0.5,17,0.05"),
    ("example_dropout_schedule", "0.5,abc"),
    ("example_dropout_schedule", "[[0.5, 17"),
    ("example_dropout_schedule", [[0.5, 50]]),
    ("example_dropout_schedule", [[1.0, 100]]),
    ("example_dropout_schedule", [["half", 100]]),
    ("example_dropout_schedule", 0.5),
    ("curriculum_type", "learned"),
    ("loss_normalization", "mean"),
    ("curriculum_update_at", [0.9, 0.2]),
    ("curriculum_update_steps", 0),
    ("closed_form_lambda2", -1.0),
    ("burn_in_steps", -3),
    ("burn_in_steps", 2.5),
    ("burn_in_epochs", math.nan),
    ("example_dropout_schedule", [[0.5, math.nan], [0.1, 100]]),
    ("example_dropout_schedule_unit", "minutes"),
):
    case("arguments", f"{name}={value!r}", "error", name)(
        lambda tmp, n=name, v=value: MentorNetTrainingArguments(**settings(tmp), **{n: v})
    )
for alpha in (0.0, -1.0, math.nan):
    case("arguments", f"mentormix_alpha={alpha!r}", "error", "mentormix_alpha")(
        lambda tmp, a=alpha: MentorMixConfig(**settings(tmp), mentormix_alpha=a)
    )
case("arguments", "MentorMix's second weighting with the closed form", "error", "mentormix_second_weighting")(
    lambda tmp: MentorMixConfig(**settings(tmp), curriculum_type="closed-form", mentormix_second_weighting=True)
)


@case("trainer", "MentorMix on a co-teaching pair", "error", "CoTeachingPair")
def _(tmp):
    peer = MLP()
    with torch.no_grad():
        peer.net[0].weight.add_(1.0)  # another initialisation, as a co-teaching peer must have
    MentorMixTrainer(CoTeachingPair(MLP(), peer), MentorMixConfig(**settings(tmp)))


case("arguments", "burn-in as a fraction and in steps", "error", "burn_in")(
    lambda tmp: MentorNetTrainingArguments(**settings(tmp), burn_in_fraction=0.2, burn_in_steps=10)
)
case("arguments", "a dropout unit of steps without a schedule", "error", "example_dropout_schedule")(
    lambda tmp: MentorNetTrainingArguments(**settings(tmp), example_dropout_schedule_unit="steps")
)
case("trainer", "burn-in in epochs over a stream", "error", "burn_in_epochs")(
    lambda tmp: mentornet_trainer(tmp, train_dataset=digits().to_iterable_dataset(), burn_in_epochs=1.0)
)
case("arguments", "lr_decay_at with lr_scheduler_type=cosine", "error", "lr_decay_at")(
    lambda tmp: MentorNetTrainingArguments(**settings(tmp), lr_decay_at=[0.5], lr_scheduler_type="cosine")
)
case("arguments", "closed_form_lambda1 without closed-form", "error", "closed_form_lambda1")(
    lambda tmp: MentorNetTrainingArguments(**settings(tmp), closed_form_lambda1=0.5)
)
case("arguments", "co_teaching_forget_rate=1.0", "error", "co_teaching_forget_rate")(
    lambda tmp: CoTeachingConfig(**settings(tmp), co_teaching_forget_rate=1.0)
)
case("trainer", "curriculum_update_dataset without curriculum_update_at", "error", "curriculum_update_dataset")(
    lambda tmp: MentorNetTrainer(
        MLP(), MentorNetTrainingArguments(**settings(tmp)), train_dataset=digits(), curriculum_update_dataset=digits()
    )
)


@case("trainer", "batch 1 with example dropout 0.5", "correct")
def _(tmp):
    return trains(mentornet_trainer(tmp, per_device_train_batch_size=1, example_dropout_schedule=[[0.5, 100]]))


@case("trainer", "batch 1, gradient accumulation 4, the DD schedule", "correct")
def _(tmp):
    trainer = mentornet_trainer(
        tmp, per_device_train_batch_size=1, gradient_accumulation_steps=4, curriculum="mentornet-dd", max_steps=2
    )
    return trains(trainer)


@case("trainer", "a NaN loss at one step", "correct")
def _(tmp):
    trainer = mentornet_trainer(tmp, max_steps=4, logging_steps=1)
    original = trainer.training_loss

    def nan_at_step_1(logits, labels):
        losses = original(logits, labels)
        return losses.index_fill(0, torch.tensor([0]), math.nan) if trainer.state.global_step == 1 else losses

    trainer.training_loss = nan_at_step_1
    return trains(trainer) and bool(torch.isfinite(trainer._loss_moving_average))


@case("trainer", "labels of -100 on half the samples", "correct")
def _(tmp):
    data = digits().map(lambda row, i: {"labels": -100 if i % 2 else row["labels"]}, with_indices=True)
    trainer = mentornet_trainer(tmp, train_dataset=data.with_format("torch"), label_issues=True)
    issues = trainer.train() and trainer.rank_label_issues()
    return trainer.state.log_history[-1]["train_loss"] > 0 and -100 not in issues["label"]


@case("trainer", "all weights zero", "correct")
def _(tmp):
    curriculum = MentorNetModel(MentorNetConfig())
    with torch.no_grad():
        curriculum.fc2.bias.fill_(-1e4)
    trainer = mentornet_trainer(tmp, curriculum=curriculum)
    trainer.train()
    return bool(torch.isfinite(parameters(trainer.model)).all())


# ---- Checkpoints ----


def damage(path: Path, how: str) -> None:
    path.unlink() if how == "missing" else path.write_bytes(b"\x00" * 10)


for file, how, names in (
    ("mentornet_trainer_state.pt", "truncated", "mentornet_trainer_state.pt"),
    ("mentornet_trainer_state.pt", "missing", "mentornet_trainer_state.pt"),
    ("model.safetensors", "truncated", "checkpoint"),
    ("mentornet/model.safetensors", "truncated", "mentornet"),
):
    case("checkpoints", f"resume with a {how} {file}", "error", names)(
        lambda tmp, f=file, h=how: (
            damage(checkpointed(tmp) / f, h)
            or mentornet_trainer(tmp, max_steps=2).train(resume_from_checkpoint=str(tmp / "run" / "checkpoint-2"))
        )
    )


@case("checkpoints", "resume with another curriculum", "error", "initial_curriculum")
def _(tmp):
    checkpoint = checkpointed(tmp)
    mentornet_trainer(tmp, max_steps=2, curriculum="mentornet-pd").train(resume_from_checkpoint=str(checkpoint))


@case("checkpoints", "resume with another learning rate", "error", "learning_rate")
def _(tmp):
    checkpoint = checkpointed(tmp)
    mentornet_trainer(tmp, max_steps=2, learning_rate=0.2).train(resume_from_checkpoint=str(checkpoint))


@case("checkpoints", "a new run over an earlier run's label issues", "error", "overwrite_output_dir")
def _(tmp):
    mentornet_trainer(tmp, label_issues=True).train()
    mentornet_trainer(tmp, label_issues=True).train()


@case("checkpoints", "a crash while saving, then resume=True", "correct")
def _(tmp):
    trainer = mentornet_trainer(tmp, max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=1)
    original = trainer._save_optimizer_and_scheduler

    def crash(output_dir):
        if trainer.state.global_step == 4:
            raise OSError("disk full")
        original(output_dir)

    trainer._save_optimizer_and_scheduler = crash
    with contextlib.suppress(OSError):
        trainer.train()
    resumed = mentornet_trainer(tmp, max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=1)
    resumed.train(resume_from_checkpoint=True)
    return resumed.state.global_step == 4 and (tmp / "run" / "checkpoint-4").is_dir()


# ---- Curricula, learning, the Hub ----

case("learning", "focal gamma=-1", "error", "gamma")(lambda tmp: learn_predefined("focal", {"gamma": -1.0}))
case("learning", "an unknown curriculum parameter", "error", "gama")(
    lambda tmp: learn_predefined("focal", {"gama": 2.0})
)
case("learning", "a string curriculum parameter", "error", "gamma")(
    lambda tmp: learn_predefined("focal", {"gamma": "two"})
)
case("learning", "an unknown curriculum", "error", "curriculum")(lambda tmp: learn_predefined("easy-first"))
case("learning", "curriculum_weights of spcl gamma=nan", "error", "gamma")(
    lambda tmp: curriculum_weights("spcl-linear", torch.ones(3), torch.ones(3), 5, gamma=math.nan)
)
case("learning", "records without clean_label", "error", "clean_label")(
    lambda tmp: learn_from_records(
        datasets.Dataset.from_dict({"sample_index": [0, 1], "epoch": [0, 1], "label": [0, 1], "loss": [0.1, 0.2]})
    )
)
case("learning", "empty records", "error", "records")(
    lambda tmp: learn_from_records(
        datasets.Dataset.from_dict(
            {"sample_index": [], "epoch": [], "label": [], "clean_label": [], "loss": []},
            features=datasets.Features(
                {
                    n: datasets.Value("float32" if n == "loss" else "int64")
                    for n in ("sample_index", "epoch", "label", "clean_label", "loss")
                }  # fmt: skip
            ),
        )
    )
)
case("hub", "save_curriculum into a non-empty directory", "error", "output_dir")(
    lambda tmp: save_curriculum(MentorNetModel(MentorNetConfig()), tmp)
)


@case("hub", "save_curriculum of a NaN MentorNet", "error", "NaN")
def _(tmp):
    model = MentorNetModel(MentorNetConfig())
    with torch.no_grad():
        model.fc1.weight.fill_(math.nan)
    save_curriculum(model, tmp / "nan")


case("hub", "load a nonexistent curriculum", "error", "curriculum")(lambda tmp: load_curriculum(str(tmp / "nope")))


@case("hub", "load a truncated model.safetensors", "error", "model.safetensors")
def _(tmp):
    path = saved_curriculum(tmp)
    (path / "model.safetensors").write_bytes(b"\x00" * 10)
    load_curriculum(path)


@case("hub", "load a config of another shape", "error", "config.json")
def _(tmp):
    path = saved_curriculum(tmp)
    config = json.loads((path / "config.json").read_text())
    config["label_embedding_size"] = config.get("label_embedding_size", 2) + 3
    (path / "config.json").write_text(json.dumps(config))
    load_curriculum(path)


@case("hub", "save_curriculum with overwrite=True beside a user's file", "correct")
def _(tmp):
    save_curriculum(MentorNetModel(MentorNetConfig()), tmp, overwrite=True)
    return (tmp / "notes.txt").read_text() == "a user's notes"


# ---- The command line ----


def run_cli(*argv: str) -> None:
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        try:
            cli.main(list(argv))
        except SystemExit as error:
            if error.code not in (0, None):
                raise SystemExit(str(error.code) if error.code != 2 else stderr.getvalue()) from None


for argv, names in (
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--batch_size", "-4"], "--batch_size"),
    (["demo", "--noise_rate", "2"], "--noise_rate"),
    (["demo", "--threads", "0"], "--threads"),
    (["demo", "--seed", "-1"], "--seed"),
    (["demo", "--methods", "mentornet-xx"], "methods"),
    (["demo", "--dataset", "cifar"], "--dataset"),
    (["learn", "predefined", "focal", "--param", "gamma", "--output_dir", "{tmp}/c"], "param"),
    (["learn", "predefined", "focal", "--output_dir", "{tmp}"], "output_dir"),
    (["learn", "records", "{tmp}/no-records", "--output_dir", "{tmp}/c"], "no-records"),
    (["noise", "{tmp}/missing", "--noise_rate", "0.2", "--output_dir", "{tmp}/n"], "missing"),
    (["noise", "{tmp}", "--noise_rate", "0.2", "--output_dir", "{tmp}"], "output_dir"),
    (["noise", "x", "--noise_rate", "0.2", "--noise_type", "flip", "--output_dir", "{tmp}/n"], "--noise_type"),
    (["plot", "no-such-curriculum", "--output", "{tmp}/p.png"], "curriculum"),
):
    case("cli", " ".join(argv).replace("{tmp}/", "").replace("{tmp}", "DIR"), "error", names)(
        lambda tmp, a=argv: run_cli(*[part.replace("{tmp}", str(tmp)) for part in a])
    )


# ---- Data whose labels came noisy ----


def crowd_labelled() -> datasets.Dataset:
    """40 images of 10 classes, every 4th label wrong, every 2nd row verified (-1 elsewhere)."""
    base = image_dataset(40)
    rows = np.arange(len(base))
    truth = np.asarray(base["label"])
    given = np.where(rows % 4 == 0, (truth + 1) % 10, truth)
    verified = np.where(rows % 2 == 0, truth, -1)
    return base.remove_columns("label").add_column("label", given.tolist()).add_column("verified", verified.tolist())


case("noisy data", "an unverified sentinel that is a class id", "error", "unverified_label")(
    lambda tmp: with_verified_labels(crowd_labelled(), "verified", unverified_label=0)
)
case("noisy data", "verified labels outside the classes", "error", "verified_label_column")(
    lambda tmp: with_verified_labels(
        crowd_labelled().map(lambda row: {"verified": row["verified"] + 7 if row["verified"] >= 0 else -1}), "verified"
    )
)
case("noisy data", "string labels without a ClassLabel", "error", "class_encode_column")(
    lambda tmp: with_verified_labels(crowd_labelled().cast_column("label", datasets.Value("string")), "verified")
)
case("noisy data", "verified labels as strings", "error", "verified_label_column")(
    lambda tmp: with_verified_labels(crowd_labelled().cast_column("verified", datasets.Value("string")), "verified")
)
case("noisy data", "a verified column with no verified row", "error", "verified_label_column")(
    lambda tmp: with_verified_labels(crowd_labelled().map(lambda row: {"verified": -1}), "verified")
)
case("noisy data", "a clean_label column of the user's", "error", "clean_label")(
    lambda tmp: with_verified_labels(crowd_labelled().rename_column("verified", "clean_label"), "clean_label")
)


@case("noisy data", "unverified rows missing (None) instead of -1", "correct")
def _(tmp):
    data = crowd_labelled()
    missing = data.map(lambda row: {"verified": None if row["verified"] < 0 else row["verified"]})
    return (
        with_verified_labels(missing, "verified")["clean_label"]
        == with_verified_labels(data, "verified")["clean_label"]
    )


@case("noisy data", "a student with another number of outputs than classes", "error", "outputs")
def _(tmp):
    noisy = datasets.DatasetDict({"train": with_verified_labels(crowd_labelled(), "verified")})
    student = build_student("transformers/resnet", 7, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    train_method("plain", noisy, lambda: student, settings(tmp), test_split=None)


@case("noisy data", "a pretrained checkpoint whose head has another size", "error", "ignore_mismatched_sizes")
def _(tmp):
    build_student("transformers/resnet", 7, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]).save_pretrained(
        tmp / "seven"
    )
    build_student(str(tmp / "seven"), 4)


@case("noisy data", "mentornet-dd with no verified row to estimate the noise", "error", "method")
def _(tmp):
    noisy = datasets.DatasetDict({"train": with_verified_labels(crowd_labelled())})
    student = build_student("transformers/resnet", 10, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    train_method("mentornet-dd", noisy, lambda: student, settings(tmp), test_split=None)


# ---- The recipes ----


def cifar_args(tmp: Path, *extra: str):
    return cifar.parse_cifar_args(["--output_dir", str(tmp / "run"), "--report_to", "none", *extra])


case("recipes", "webvision.py on a nonexistent data_dir", "error", "no-webvision")(
    lambda tmp: webvision.main(
        *webvision.parse_webvision_args(["--data_dir", str(tmp / "no-webvision"), "--output_dir", str(tmp / "run")])
    )  # fmt: skip
)
case("recipes", "cifar.py on a nonexistent local dataset", "error", "dataset")(
    lambda tmp: cifar.main(*cifar_args(tmp, "--dataset", str(tmp / "no-data")))
)


@case("recipes", "cifar.py into a directory of a user's files", "error", "output_dir")
def _(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "mine.txt").write_text("mine")
    cifar.main(*cifar_args(tmp, "--dataset", str(tmp / "no-data")))


@case("recipes", "a corrected re-run after a failed run", "correct")
def _(tmp):
    with contextlib.suppress(ValueError):
        cifar.main(*cifar_args(tmp, "--dataset", str(tmp / "no-data")))
    try:  # the data is still missing: that, not the failed run's run_args.json, must be what stops it
        cifar.main(*cifar_args(tmp, "--dataset", str(tmp / "no-data"), "--learning_rate", "0.01"))
    except ValueError as error:
        return "holds a different run" not in str(error) and "no-data" in str(error)
    return False


# ---- Running them ----


def outcome(area: str, name: str, expect: str, names: str, function: Callable[[Path], object]) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        (tmp / "notes.txt").write_text("a user's notes")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                result = function(tmp)
        except BaseException as error:  # noqa: BLE001 - classified below
            if isinstance(error, KeyboardInterrupt):
                raise
            message = str(error)
            frame = traceback.extract_tb(error.__traceback__)[-1].filename if error.__traceback__ else ""
            ours = any(part in frame for part in OURS) or isinstance(error, SystemExit)
            named = names.lower() in message.lower()
            ended = "clear error" if ours and named and isinstance(error, ValueError | TypeError | FileNotFoundError | SystemExit) else "other"  # fmt: skip
            detail = f"{type(error).__name__}: {message.splitlines()[0] if message else ''}"
        else:
            ended = "correct" if expect == "correct" and result is True else "other"
            detail = f"returned {result!r}"
        intact = (tmp / "notes.txt").read_text() == "a user's notes"
    if not intact:
        ended, detail = "other", "a user's file was changed: " + detail
    good = (expect == "error" and ended == "clear error") or (expect == "correct" and ended == "correct")
    return {"area": area, "input": name, "expected": expect, "ended": ended, "as_expected": good, "detail": detail}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="bench/results/bad_inputs.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    rows = [outcome(*entry) for entry in CASES]
    print("| area | input | expected | how it ended | message or result |")
    print("|---|---|---|---|---|")
    for row in rows:
        flag = "" if row["as_expected"] else " **(not as expected)**"
        detail = row["detail"].replace("|", "/")[:110]
        print(f"| {row['area']} | {row['input']} | {row['expected']} | {row['ended']}{flag} | {detail} |")
    counts = {ended: sum(row["ended"] == ended for row in rows) for ended in ("clear error", "correct", "other")}
    print(f"\n{len(rows)} inputs tried: {counts['clear error']} clear errors, {counts['correct']} correct, "
          f"{counts['other']} other; {sum(not row['as_expected'] for row in rows)} not as expected.")  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"counts": counts, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
