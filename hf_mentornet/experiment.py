"""Students on noisy labels: one controlled-noise experiment (the paper's Sec. 5.1 protocol: corrupt the training
labels of an image dataset, train a student with a method, measure clean test accuracy and how the curriculum
weighted clean and corrupted samples), and learning a data-driven curriculum from a student's records.
`recipes/cifar.py`, `recipes/train_mentornet.py` and the `hf-mentornet demo` main job are thin layers over it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
from torch import nn
from transformers import EvalPrediction, TrainerCallback, TrainingArguments, set_seed
from transformers.utils import logging

from .baselines import CoTeachingPair, NoiseAdaptationLayer
from .configuration_mentornet import DD_DROPOUT_SCHEDULE, MentorNetConfig
from .data import MentorNetCollator, image_transforms, with_image_transform
from .learning import learn_from_records
from .metrics import load_metric
from .modeling_mentornet import MentorNetModel, load_curriculum
from .noise import inject_label_noise
from .trainer import MentorNetTrainer
from .training_args import MentorNetTrainingArguments

__all__ = [
    "METHODS",
    "ExperimentResult",
    "check_output_dir",
    "learn_data_driven_curriculum",
    "run_arguments",
    "run_experiment",
]

logger = logging.get_logger(__name__)

# Plain training: the shipped uniform curriculum, no burn-in, no example dropout.
_PLAIN = {"curriculum": "baseline", "burn_in_fraction": 0.0, "example_dropout_schedule": [[0.0, 100]]}

METHODS: dict[str, dict[str, Any]] = {
    "plain": _PLAIN,
    "mentornet-pd": {"curriculum": "mentornet-pd"},
    "mentornet-dd": {"curriculum": "mentornet-dd"},
    # The baselines of the paper (Appendix E.2); their parameters (`focal_gamma`, `reed_beta`,
    # `self_paced_percentile`, ...) come from the training arguments, so they can be tuned as the paper does.
    "focal": {**_PLAIN, "loss_type": "focal"},
    "reed-soft": {**_PLAIN, "loss_type": "reed-soft"},
    "reed-hard": {**_PLAIN, "loss_type": "reed-hard"},
    "self-paced": {**_PLAIN, "curriculum_type": "self-paced"},
    # Below, run_experiment also changes the student or the data (see its docstring).
    "s-model": _PLAIN,
    "co-teaching": _PLAIN,
    "forgetting": _PLAIN,
    "oracle": _PLAIN,
}
"""The methods by name: overrides of [`MentorNetTrainingArguments`]. `s-model` wraps the student in a
[`NoiseAdaptationLayer`], `co-teaching` trains a [`CoTeachingPair`] of two students, `oracle` trains on the samples
whose label was not corrupted, and `forgetting` (Arpit et al., 2017) is plain training of a student built with
dropout (the caller's `student_factory` sets it, e.g. timm's `drop_rate`; the paper tunes it in 0.2-0.9). Any other
name is taken as a curriculum (a shipped name, a directory or a Hub id) used with its own training settings."""


@dataclass
class ExperimentResult:
    """What one run measured.

    Args:
        method: the method's name.
        accuracy_per_epoch: clean test (top-1) accuracy after each epoch, by the shipped `top_k_accuracy` metric.
        best_accuracy, last_accuracy: the best and the final clean test accuracy (the paper compares converged
            models: last); `last_top5_accuracy` the final top-5 accuracy.
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
    last_top5_accuracy: float = math.nan
    mean_weight_clean: float = math.nan
    mean_weight_noisy: float = math.nan
    selection_precision: float = math.nan
    selection_recall: float = math.nan
    train_seconds: float = math.nan


def _after_burn_in_mean(log_history: list[dict[str, float]], key: str, first_step: float) -> float:
    values = [entry[key] for entry in log_history if key in entry and entry["step"] > first_step]
    return float(np.mean(values)) if values else math.nan


def _train_on_noisy(
    noisy: datasets.DatasetDict,
    student_factory: Callable[[], nn.Module],
    args: MentorNetTrainingArguments,
    *,
    train_split: str,
    test_split: str | None,
    image_column: str,
    label_column: str,
    cifar_augmentation: bool,
    transform_kwargs: dict[str, Any] | None,
    callbacks: list[TrainerCallback] | None,
    curriculum_update_rows: np.ndarray | None = None,
) -> MentorNetTrainer:
    """Build a fresh student and its trainer on an already-noised dataset, train, and return the trainer. The
    training rows `curriculum_update_rows` (eval transform) are the trainer's `curriculum_update_dataset`."""
    set_seed(args.seed)  # every method starts from the same initial student
    student = student_factory()
    # A baseline's wrapper takes the images of the student it wraps.
    base_student = student.student if isinstance(student, NoiseAdaptationLayer | CoTeachingPair) else student
    transform_kwargs = {"cifar_augmentation": cifar_augmentation, **(transform_kwargs or {})}

    def prepared(split: str, train: bool) -> datasets.Dataset:
        transform = image_transforms(base_student, train=train, **transform_kwargs)
        return with_image_transform(noisy[split], transform, image_column=image_column, label_column=label_column)

    top_k = load_metric("top_k_accuracy")

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        return top_k.compute(predictions=prediction.predictions, references=prediction.label_ids, k=[1, 5])

    trainer = MentorNetTrainer(
        model=student,
        args=args,
        train_dataset=prepared(train_split, train=True),
        eval_dataset=None if test_split is None else prepared(test_split, train=False),
        data_collator=MentorNetCollator(),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        curriculum_update_dataset=None
        if curriculum_update_rows is None
        else prepared(train_split, train=False).select(curriculum_update_rows),
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    return trainer


def _check_splits(dataset: datasets.DatasetDict, *splits: str) -> None:
    for split in splits:
        if split not in dataset:
            raise ValueError(f"The dataset has no split {split!r}; its splits are {list(dataset)}.")


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
    curriculum_update_size: int = 0,
) -> tuple[ExperimentResult, MentorNetTrainer]:
    """Corrupt `dataset[train_split]` labels, train `student_factory()` with `method`, evaluate on the clean
    `dataset[test_split]` every epoch.

    Args:
        dataset: a `DatasetDict` with an image column and an integer (or `ClassLabel`) label column.
        student_factory: builds a fresh, randomly initialised student (seeded with `args.seed`, so every method
            starts from the same student).
        method: a key of [`METHODS`], or a curriculum (shipped name, directory or Hub id). `s-model` wraps the
            student in a [`NoiseAdaptationLayer`] (saved with it; evaluated without the channel); `co-teaching`
            trains `CoTeachingPair(student_factory(), student_factory())` with `co_teaching_forget_rate` (when
            unset) the corrupted fraction of the training split, as Han et al. assume the noise rate known, and
            evaluates the first student; `oracle` trains on the training samples whose label was not corrupted;
            `forgetting` is plain training: build the student with dropout in `student_factory`.
        args: the training arguments; the method's overrides are applied to a copy.
        noise_rate, noise_type, noise_seed: passed to [`inject_label_noise`].
        cifar_augmentation: the paper's CIFAR augmentation (pad 4, random crop, flip) on the training images.
        transform_kwargs: overrides of the student's image transform settings (`image_size`, `mean`, `std`,
            `in_chans`; see [`image_transforms`]).
        curriculum_update_size: with `args.curriculum_update_at`, the data-driven update (Algorithm 1 step 6)
            re-learns the MentorNet from the student's losses on this many training samples whose clean labels
            it is told: the paper's D', a small part of the training data with known true labels (CIFAR-10: 5,000
            of the 50,000 training images). Drawn at random with `noise_seed`. 0: the update re-fits the
            curriculum's predefined formula instead (see [`MentorNetTrainer`]).

    Returns:
        The [`ExperimentResult`] and the trainer (for saving the student, records, label issues).
    """
    _check_splits(dataset, train_split, test_split)
    if method not in METHODS:
        try:
            load_curriculum(method)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"`method`={method!r} is not a method ({', '.join(METHODS)}) nor a curriculum that loads: {error}"
            ) from error
    noisy = inject_label_noise(
        dataset, noise_rate, noise_type, seed=noise_seed, label_column=label_column, splits=(train_split,)
    )
    overrides = dict(METHODS.get(method, {"curriculum": method}))
    factory = student_factory
    if method == "oracle":
        # The ceiling of a perfect curriculum: the same student on the correctly labelled samples only.
        clean_rows = np.flatnonzero(~np.asarray(noisy[train_split]["is_noisy"], dtype=bool))
        noisy[train_split] = noisy[train_split].select(clean_rows).flatten_indices()
    elif method == "s-model":
        num_labels = _num_labels(noisy[train_split], label_column)

        def factory() -> nn.Module:
            return NoiseAdaptationLayer(student_factory(), num_labels)

    elif method == "co-teaching":
        if args.co_teaching_forget_rate is None:
            overrides["co_teaching_forget_rate"] = float(np.mean(noisy[train_split]["is_noisy"]))

        def factory() -> nn.Module:
            return CoTeachingPair(student_factory(), student_factory())

    run_args = dataclasses.replace(args, **overrides, eval_strategy="epoch")
    update_rows = None
    if curriculum_update_size:
        train_size = len(noisy[train_split])
        if not run_args.curriculum_update_at or not 0 < curriculum_update_size <= train_size:
            raise ValueError(
                f"`curriculum_update_size`={curriculum_update_size!r} needs `curriculum_update_at` (got "
                f"{run_args.curriculum_update_at!r}) and at most the {train_size} training samples; e.g. "
                f"curriculum_update_at=[0.21, 0.75] and {max(1, train_size // 10)} (a tenth, as the paper)."
            )
        update_rows = np.random.default_rng(noise_seed).permutation(train_size)[:curriculum_update_size]
    trainer = _train_on_noisy(
        noisy,
        factory,
        run_args,
        train_split=train_split,
        test_split=test_split,
        image_column=image_column,
        label_column=label_column,
        cifar_augmentation=cifar_augmentation,
        transform_kwargs=transform_kwargs,
        callbacks=callbacks,
        curriculum_update_rows=update_rows,
    )
    history = trainer.state.log_history
    accuracies = [entry["eval_top1_accuracy"] for entry in history if "eval_top1_accuracy" in entry]
    top5 = [entry["eval_top5_accuracy"] for entry in history if "eval_top5_accuracy" in entry]
    first_step = trainer.burn_in_fraction * trainer.state.max_steps
    result = ExperimentResult(
        method=method,
        accuracy_per_epoch=accuracies,
        best_accuracy=max(accuracies, default=math.nan),
        last_accuracy=accuracies[-1] if accuracies else math.nan,
        last_top5_accuracy=top5[-1] if top5 else math.nan,
        mean_weight_clean=_after_burn_in_mean(history, "mentornet/mean_weight_clean", first_step),
        mean_weight_noisy=_after_burn_in_mean(history, "mentornet/mean_weight_noisy", first_step),
        selection_precision=_after_burn_in_mean(history, "mentornet/selection_precision", first_step),
        selection_recall=_after_burn_in_mean(history, "mentornet/selection_recall", first_step),
        train_seconds=next(entry["train_runtime"] for entry in history if "train_runtime" in entry),
    )
    if trainer.is_world_process_zero():
        path = os.path.join(run_args.output_dir, "results.json")
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            json.dump(result.__dict__, file, indent=2)
        os.replace(path + ".tmp", path)
    return result, trainer


def _num_labels(split: datasets.Dataset, label_column: str) -> int:
    feature = split.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes
    return int(max(split[label_column])) + 1


def run_arguments(script_args: Any, training_args: MentorNetTrainingArguments) -> dict[str, Any]:
    """The arguments that define what a run learns: a recipe's own arguments (a dataclass) and the training
    arguments that change the optimisation or the curriculum (not output, logging, saving or resuming)."""
    curriculum_fields = {f.name for f in dataclasses.fields(MentorNetTrainingArguments)} - {
        f.name for f in dataclasses.fields(TrainingArguments)
    }
    training_fields = curriculum_fields | {
        "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay", "optim",
        "optim_args", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "max_steps", "max_grad_norm",
        "label_smoothing_factor", "seed",
    }  # fmt: skip
    training = training_args.to_dict()
    script = {name: value for name, value in dataclasses.asdict(script_args).items() if name != "overwrite_output_dir"}
    # A JSON round trip so that the comparison with a saved run sees the same types (lists, not tuples).
    return json.loads(json.dumps({**script, **{name: training[name] for name in sorted(training_fields)}}))


def check_output_dir(script_args: Any, training_args: MentorNetTrainingArguments, *, overwrite: bool = False) -> None:
    """Refuse an output directory that holds a different run (its `run_args.json` differs from
    [`run_arguments`]), unless `overwrite` or resuming; then write this run's `run_args.json`. Call it on the main
    process only: if it raises, the launcher stops the other processes."""
    current = run_arguments(script_args, training_args)
    path = os.path.join(training_args.output_dir, "run_args.json")
    if os.path.isfile(path):
        with open(path) as file:
            saved = json.load(file)
        changed = sorted(name for name in saved.keys() | current.keys() if saved.get(name) != current.get(name))
        if changed and not (overwrite or training_args.resume_from_checkpoint):
            differences = "; ".join(f"{name}: {saved.get(name)!r} -> {current.get(name)!r}" for name in changed)
            raise ValueError(
                f"`output_dir`={training_args.output_dir!r} holds a different run ({differences}). Pass "
                "--overwrite_output_dir to replace it, --resume_from_checkpoint to continue it with these "
                "arguments, or choose another --output_dir."
            )
    elif os.path.isdir(training_args.output_dir) and os.listdir(training_args.output_dir):
        if not overwrite:
            raise ValueError(
                f"`output_dir`={training_args.output_dir!r} is not empty and holds no run_args.json, so it is not a "
                "run of this recipe. Pass --overwrite_output_dir to write into it anyway, or choose another "
                "--output_dir."
            )
    os.makedirs(training_args.output_dir, exist_ok=True)
    with open(path + ".tmp", "w") as file:
        json.dump(current, file, indent=2)
    os.replace(path + ".tmp", path)


def learn_data_driven_curriculum(
    dataset: datasets.Dataset,
    student_factory: Callable[[], nn.Module],
    args: MentorNetTrainingArguments,
    *,
    noise_rates: Sequence[float] = (0.4,),
    noise_type: str = "uniform",
    noise_seed: int = 0,
    image_column: str = "image",
    label_column: str = "label",
    cifar_augmentation: bool = False,
    transform_kwargs: dict[str, Any] | None = None,
    config: MentorNetConfig | None = None,
    learning_kwargs: dict[str, Any] | None = None,
) -> tuple[MentorNetModel, dict[str, Any], datasets.Dataset]:
    """Learn a data-driven (DD) curriculum as the paper does (Sec. 3.1, 5.1): on a small dataset with known clean
    labels, inject label noise, train a student with plain training while recording every sample's loss, and fit a
    MentorNet to tell the records of correctly labelled samples from the corrupted ones.

    The paper learns one DD MentorNet per noise rate, at the rate of the data it will train on; with several
    `noise_rates` the records of one student per rate are pooled into one curriculum (softer: measured on MNIST with
    40% noise, pooling 0.2/0.4/0.8 gave corrupted samples weight 0.41 against 0.31 for the 0.4 curriculum).

    Args:
        dataset: the clean-labelled images (e.g. 5,000 CIFAR-10 training images), with image and label columns.
        student_factory: builds a fresh student.
        args: the student's training arguments (`output_dir` gets one sub-directory per noise rate).
        noise_rates, noise_type, noise_seed: the injected noise ([`inject_label_noise`]).
        config: the DD MentorNet's configuration (architecture and the training settings it recommends);
            defaults to the released DD command's settings (`fixed_epoch_after_burn_in`, its dropout schedule).
        learning_kwargs: passed to [`learn_from_records`].

    Returns:
        The MentorNet, the learning metrics, and the pooled records.
    """
    config = config or MentorNetConfig(fixed_epoch_after_burn_in=True, example_dropout_schedule=DD_DROPOUT_SCHEDULE)
    records = []
    for index, rate in enumerate(noise_rates):
        noisy = inject_label_noise(
            datasets.DatasetDict(train=dataset), rate, noise_type, seed=noise_seed + index, label_column=label_column
        )
        run_args = dataclasses.replace(
            args,
            **METHODS["plain"],
            output_dir=os.path.join(args.output_dir, f"records-noise-{rate:g}"),
            record_student=True,
            eval_strategy="no",
        )
        trainer = _train_on_noisy(
            noisy,
            student_factory,
            run_args,
            train_split="train",
            test_split=None,
            image_column=image_column,
            label_column=label_column,
            cifar_augmentation=cifar_augmentation,
            transform_kwargs=transform_kwargs,
            callbacks=None,
        )
        student_records = trainer.student_records()
        records.append(student_records.add_column("noise_rate", [float(rate)] * len(student_records)))
    pooled = datasets.concatenate_datasets(records)
    model, metrics = learn_from_records(pooled, config, **(learning_kwargs or {}))
    model.config.learned_from.update(
        {
            "noise_rates": list(noise_rates),
            "noise_type": noise_type,
            "dataset_size": len(dataset),
            "student_epochs": args.num_train_epochs,
        }
    )
    return model, metrics, pooled
