"""One controlled-noise experiment (the paper's Sec. 5.1 protocol): corrupt the training labels of an image
dataset, train a student with a method, and measure clean test accuracy and how the curriculum weighted clean and
corrupted samples. `recipes/cifar.py` and the `hf-mentornet demo` main job are thin layers over it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
from torch import nn
from transformers import EvalPrediction, TrainerCallback, set_seed
from transformers.utils import logging

from .data import MentorNetCollator, image_transforms, with_image_transform
from .noise import inject_label_noise
from .trainer import MentorNetTrainer
from .training_args import MentorNetTrainingArguments

__all__ = ["METHODS", "ExperimentResult", "run_experiment"]

logger = logging.get_logger(__name__)

METHODS: dict[str, dict[str, Any]] = {
    # Plain training: the shipped uniform curriculum, no burn-in, no example dropout.
    "plain": {"curriculum": "baseline", "burn_in_fraction": 0.0, "example_dropout_schedule": [[0.0, 100]]},
    "mentornet-pd": {"curriculum": "mentornet-pd"},
    "mentornet-dd": {"curriculum": "mentornet-dd"},
}
"""The methods by name: overrides of [`MentorNetTrainingArguments`]. Any other name is taken as a curriculum
(a shipped name, a directory or a Hub id) used with its own training settings."""


def _accuracy(prediction: EvalPrediction) -> dict[str, float]:
    logits, labels = prediction.predictions, prediction.label_ids
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


@dataclass
class ExperimentResult:
    """What one run measured.

    Args:
        method: the method's name.
        accuracy_per_epoch: clean test accuracy after each epoch.
        best_accuracy, last_accuracy: the best and the final clean test accuracy (the paper compares converged
            models: last).
        mean_weight_clean, mean_weight_noisy: the mean weight the curriculum gave to samples whose label is right
            / corrupted, over the logging steps after burn-in.
        selection_precision, selection_recall: of the samples given weight > 0.5 after burn-in, the share with a
            right label; and the share of right-label samples selected.
        train_seconds: wall time of training.
    """

    method: str
    accuracy_per_epoch: list[float] = field(default_factory=list)
    best_accuracy: float = math.nan
    last_accuracy: float = math.nan
    mean_weight_clean: float = math.nan
    mean_weight_noisy: float = math.nan
    selection_precision: float = math.nan
    selection_recall: float = math.nan
    train_seconds: float = math.nan


def _after_burn_in_mean(log_history: list[dict[str, float]], key: str, first_step: float) -> float:
    values = [entry[key] for entry in log_history if key in entry and entry["step"] > first_step]
    return float(np.mean(values)) if values else math.nan


def run_experiment(
    dataset: datasets.DatasetDict,
    student_factory: Callable[[], nn.Module],
    method: str,
    args: MentorNetTrainingArguments,
    *,
    noise_rate: float,
    noise_type: str = "uniform",
    noise_seed: int = 0,
    image_column: str = "image",
    label_column: str = "label",
    train_split: str = "train",
    test_split: str = "test",
    cifar_augmentation: bool = False,
    transform_kwargs: dict[str, Any] | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> tuple[ExperimentResult, MentorNetTrainer]:
    """Corrupt `dataset[train_split]` labels, train `student_factory()` with `method`, evaluate on the clean
    `dataset[test_split]` every epoch.

    Args:
        dataset: a `DatasetDict` with an image column and an integer (or `ClassLabel`) label column.
        student_factory: builds a fresh, randomly initialised student (so every method starts alike).
        method: a key of [`METHODS`], or a curriculum (shipped name, directory or Hub id).
        args: the training arguments; the method's overrides are applied to a copy.
        noise_rate, noise_type, noise_seed: passed to [`inject_label_noise`].
        cifar_augmentation: the paper's CIFAR augmentation (pad 4, random crop, flip) on the training images.
        transform_kwargs: image transform settings (`image_size`, `mean`, `std`, `in_chans`) used instead of the
            student's own (needed for a transformers student built from a config, which has no image processor).

    Returns:
        The [`ExperimentResult`] and the trainer (for saving the student, records, label issues).
    """
    for split in (train_split, test_split):
        if split not in dataset:
            raise ValueError(f"The dataset has no split {split!r}; its splits are {list(dataset)}.")
    noisy = inject_label_noise(
        dataset, noise_rate, noise_type, seed=noise_seed, label_column=label_column, splits=(train_split,)
    )
    set_seed(args.seed)  # every method starts from the same initial student
    student = student_factory()
    source = student if transform_kwargs is None else None
    train_transform = image_transforms(
        source, train=True, cifar_augmentation=cifar_augmentation, **(transform_kwargs or {})
    )
    test_transform = image_transforms(
        source, train=False, cifar_augmentation=cifar_augmentation, **(transform_kwargs or {})
    )
    train = with_image_transform(
        noisy[train_split], train_transform, image_column=image_column, label_column=label_column
    )
    test = with_image_transform(
        noisy[test_split], test_transform, image_column=image_column, label_column=label_column
    )
    overrides = METHODS.get(method, {"curriculum": method})
    run_args = dataclasses.replace(args, **overrides, eval_strategy="epoch")
    trainer = MentorNetTrainer(
        model=student,
        args=run_args,
        train_dataset=train,
        eval_dataset=test,
        data_collator=MentorNetCollator(),
        compute_metrics=_accuracy,
        callbacks=callbacks,
    )
    output = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    history = trainer.state.log_history
    accuracies = [entry["eval_accuracy"] for entry in history if "eval_accuracy" in entry]
    first_step = trainer.burn_in_fraction * trainer.state.max_steps
    result = ExperimentResult(
        method=method,
        accuracy_per_epoch=accuracies,
        best_accuracy=max(accuracies, default=math.nan),
        last_accuracy=accuracies[-1] if accuracies else math.nan,
        mean_weight_clean=_after_burn_in_mean(history, "mentornet/mean_weight_clean", first_step),
        mean_weight_noisy=_after_burn_in_mean(history, "mentornet/mean_weight_noisy", first_step),
        selection_precision=_after_burn_in_mean(history, "mentornet/selection_precision", first_step),
        selection_recall=_after_burn_in_mean(history, "mentornet/selection_recall", first_step),
        train_seconds=output.metrics["train_runtime"],
    )
    if trainer.is_world_process_zero():
        path = os.path.join(run_args.output_dir, "results.json")
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            json.dump(result.__dict__, file, indent=2)
        os.replace(path + ".tmp", path)
    return result, trainer
