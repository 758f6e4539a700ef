"""Every training method of the library by name, and one run of a method on an already-noisy dataset: the one place
the recipes, the benchmark and the `hf-mentornet demo` main job pick a trainer, its arguments, its student and its
data from.

    from hf_mentornet.methods import train_method
    summary, trainer = train_method("mentornet-dd", noisy, student_factory, {"output_dir": "runs/dd", ...})
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn
from transformers import EvalPrediction, TrainerCallback, set_seed
from transformers.utils import logging

from .baselines import (
    CoTeachingPair,
    CoTeachingTrainer,
    NoiseAdaptationLayer,
    RobustLossTrainer,
    SelfPacedTrainer,
)
from .configuration_mentornet import MentorNetConfig
from .data import MentorNetCollator, image_transforms, with_image_transform
from .hub import resolve_curriculum_path, shipped_curricula
from .mentormix import MentorMixTrainer
from .metrics import load_metric
from .students import student_logits
from .trainer import MentorNetTrainer
from .weighted_trainer import WeightedLossArguments, WeightedLossTrainer

__all__ = [
    "METHODS",
    "SMALL_STUDENT_SETTINGS",
    "Method",
    "RunSummary",
    "dd_curriculum",
    "method_arguments",
    "train_method",
]

logger = logging.get_logger(__name__)


def _noise_adaptation(student_factory: Callable[[], nn.Module], num_labels: int) -> nn.Module:
    return NoiseAdaptationLayer(student_factory(), num_labels)


def _co_teaching_pair(student_factory: Callable[[], nn.Module], num_labels: int) -> nn.Module:
    return CoTeachingPair(student_factory(), student_factory())


@dataclass(frozen=True)
class Method:
    """A training method: its trainer (whose `args_class` is its arguments), the arguments it fixes, how it wraps
    the student, and whether it trains on the correctly labelled samples only.

    Args:
        trainer_class: a [`WeightedLossTrainer`] subclass (or the class itself: plain training).
        overrides: arguments of `trainer_class.args_class` the method sets.
        student_wrapper: `(student_factory, num_labels) -> model`, e.g. the S-model's noise channel; None: the
            student as built.
        clean_only: train on the samples whose label was not corrupted (the oracle).
        on_policy: learn the curriculum from the student's features on a trusted subset of the training rows
            (`trusted_size` / `trusted_dataset` of [`train_method`]; [`MentorNetTrainer`]'s `trusted_dataset`).
    """

    trainer_class: type[WeightedLossTrainer]
    overrides: dict[str, Any] = field(default_factory=dict)
    student_wrapper: Callable[[Callable[[], nn.Module], int], nn.Module] | None = None
    clean_only: bool = False
    on_policy: bool = False


METHODS: dict[str, Method] = {
    "plain": Method(WeightedLossTrainer),
    # Arpit et al. (2017): plain training of a student built with dropout (the caller's student factory sets it).
    "forgetting": Method(WeightedLossTrainer),
    "oracle": Method(WeightedLossTrainer, clean_only=True),
    "s-model": Method(WeightedLossTrainer, student_wrapper=_noise_adaptation),
    "focal": Method(RobustLossTrainer, {"loss_type": "focal"}),
    "reed-soft": Method(RobustLossTrainer, {"loss_type": "reed-soft"}),
    "reed-hard": Method(RobustLossTrainer, {"loss_type": "reed-hard"}),
    "self-paced": Method(SelfPacedTrainer),
    # Han et al. average the loss over the kept samples: the weight decay is not scaled by the mean weight.
    "co-teaching": Method(
        CoTeachingTrainer, {"scale_weight_decay_by_mean_weight": False}, student_wrapper=_co_teaching_pair
    ),
    # MentorNet with the curriculum of the arguments (`curriculum`: a shipped name, a directory or a Hub id).
    "mentornet": Method(MentorNetTrainer),
    "mentornet-pd": Method(MentorNetTrainer, {"curriculum": "mentornet-pd"}),
    # The curriculum is the shipped DD learned at the noise rate nearest the data's (`dd_curriculum`).
    "mentornet-dd": Method(MentorNetTrainer),
    # The DD learned on-policy from the student's features on a trusted subset of the training rows; the shipped PD
    # gives the training settings only (burn-in, example dropout, moving-average decay).
    "mentornet-dd-onpolicy": Method(MentorNetTrainer, {"curriculum": "mentornet-pd"}, on_policy=True),
    # MentorMix (Jiang et al., ICML 2020) with the curriculum of the arguments (default the shipped PD).
    "mentormix": Method(MentorMixTrainer),
    # MentorMix guided by the DD learned on-policy, as `mentornet-dd-onpolicy` learns it.
    "mentormix-dd-onpolicy": Method(MentorMixTrainer, {"curriculum": "mentornet-pd"}, on_policy=True),
}
"""The methods by name. `mentornet-pd` / `mentornet-dd` are MentorNet with the shipped predefined / data-driven
curriculum; `mentornet-dd-onpolicy` learns its DD from the student it trains (a trusted subset needed), and
`mentormix-dd-onpolicy` mixes by that DD's weights; `mentornet` and `mentormix` take any curriculum from the
arguments' `curriculum`."""


SMALL_STUDENT_SETTINGS: dict[str, Any] = {
    "per_device_train_batch_size": 128,
    "learning_rate": 0.05,
    "optim": "sgd",
    "optim_args": "momentum=0.9",
    "weight_decay": 5e-4,
    "lr_scheduler_type": "cosine",
    "num_train_epochs": 30,
}
"""How the small CPU students are trained: those of the `hf-mentornet demo` main job and those whose records
taught the shipped DD curricula (`recipes/train_mentornet.py --source student`)."""


def dd_curriculum(noise_rate: float) -> str:
    """The shipped data-driven curriculum for data with `noise_rate` corrupted labels: the one learned at the
    nearest noise rate (the paper learns one DD per noise rate; `mentornet-dd` is the 0.4 one). The DDs re-learned
    on-policy from the benchmark's student (`mentornet-dd-<regime>-<rate>`, their `learned_from` names the regime)
    are loaded by name only: in the benchmark's `full` regime, the closest to how users train, they lose to these
    (bench/RESULTS.md)."""
    learned_at = {}
    for name in shipped_curricula():
        if name.startswith("mentornet-dd"):
            learned = MentorNetConfig.from_pretrained(resolve_curriculum_path(name)).learned_from
            if "regime" not in learned:  # a re-learned DD: by name only
                learned_at[learned["noise_rates"][0]] = name
    nearest = min(learned_at, key=lambda rate: abs(rate - noise_rate))
    if not math.isclose(nearest, noise_rate):
        logger.info(
            f"No shipped DD learned at noise rate {noise_rate:g}: using {learned_at[nearest]!r} ({nearest:g})."
        )
    return learned_at[nearest]


def method_arguments(
    name: str,
    settings: dict[str, Any] | WeightedLossArguments,
    *,
    corrupted_fraction: float | None,
    overrides: dict[str, Any] | None = None,
) -> WeightedLossArguments:
    """The arguments of method `name`: its trainer's arguments class, from `settings` (keyword arguments of that
    class, or an instance of it), with the method's overrides and then `overrides`. `corrupted_fraction`, the share
    of corrupted training labels (None: not known), picks the DD curriculum ([`dd_curriculum`]) and is co-teaching's
    forget rate unless `settings` set `co_teaching_forget_rate` (Han et al. assume the noise rate known)."""
    if name not in METHODS:
        raise ValueError(f"`method`={name!r} is not a method; use one of {list(METHODS)}.")
    method = METHODS[name]
    args_class = method.trainer_class.args_class
    given = vars(settings) if isinstance(settings, WeightedLossArguments) else settings
    method_overrides = dict(method.overrides)
    needs_rate = name == "mentornet-dd" or (name == "co-teaching" and given.get("co_teaching_forget_rate") is None)
    if needs_rate and corrupted_fraction is None:
        raise ValueError(
            f"`method`={name!r} needs the share of wrong labels (to pick the DD curriculum learned at the nearest "
            "noise rate / co-teaching's forget rate), which is not known for this data: give verified labels for some "
            "rows (they estimate it), set `co_teaching_forget_rate`, or use `method`='mentornet' with a `curriculum` "
            "(e.g. 'mentornet-dd', learned at noise rate 0.4)."
        )
    if name == "mentornet-dd":
        method_overrides["curriculum"] = dd_curriculum(corrupted_fraction)
    if name == "co-teaching" and given.get("co_teaching_forget_rate") is None:
        method_overrides["co_teaching_forget_rate"] = float(corrupted_fraction)
    method_overrides.update(overrides or {})
    if isinstance(settings, WeightedLossArguments):
        if type(settings) is not args_class:
            raise TypeError(
                f"`settings` is a {type(settings).__name__}, but `method`={name!r} takes {args_class.__name__}."
            )
        return dataclasses.replace(settings, **method_overrides)
    accepted = {f.name for f in dataclasses.fields(args_class)}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ValueError(
            f"{unknown} are not arguments of `method`={name!r} ({args_class.__name__}); drop them, or pick the method "
            "they belong to."
        )
    return args_class(**{**settings, **method_overrides})


@dataclass
class RunSummary:
    """What one run measured.

    Args:
        method: the method's name.
        accuracy_per_epoch: clean test (top-1) accuracy after each epoch, by the shipped `top_k_accuracy` metric.
        best_accuracy, last_accuracy: the best and the final clean test accuracy (the paper compares converged
            models: last); `last_top5_accuracy` the final top-5 accuracy.
        mean_weight_clean, mean_weight_noisy: the mean weight given to samples whose label is right / corrupted,
            over the logging steps after burn-in.
        selection_precision, selection_recall: of the samples given weight > 0.5 after burn-in, the share with a
            right label; and the share of right-label samples selected.
        train_seconds: wall time of training.
        memorised_per_epoch, corrected_per_epoch: after each epoch, the share of the training samples whose label
            was corrupted that the student predicts as that wrong label / as their right label (every training
            sample's, the oracle's left-out ones too).
        mean_weight_clean_per_epoch, mean_weight_noisy_per_epoch: the mean weight of right / corrupted labels in
            each epoch (the mean of its logging steps): entry `e - 1` is epoch `e`, NaN for an epoch without a
            logging step (`logging_steps` longer than an epoch).
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
    memorised_per_epoch: list[float] = field(default_factory=list)
    corrected_per_epoch: list[float] = field(default_factory=list)
    mean_weight_clean_per_epoch: list[float] = field(default_factory=list)
    mean_weight_noisy_per_epoch: list[float] = field(default_factory=list)

    def save(self, path: str) -> None:
        """Write the summary as JSON to `path` atomically (an interrupted write leaves no file)."""
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            json.dump(dataclasses.asdict(self), file, indent=2)
        os.replace(path + ".tmp", path)

    @classmethod
    def from_trainer(cls, method: str, trainer: WeightedLossTrainer) -> RunSummary:
        history = trainer.state.log_history
        accuracies = [entry["eval_top1_accuracy"] for entry in history if "eval_top1_accuracy" in entry]
        top5 = [entry["eval_top5_accuracy"] for entry in history if "eval_top5_accuracy" in entry]
        first_step = trainer.burn_in_steps

        def after_burn_in(key: str) -> float:
            values = [entry[key] for entry in history if key in entry and entry["step"] > first_step]
            return float(np.mean(values)) if values else math.nan

        def per_epoch(key: str) -> list[float]:
            """The mean of `key`'s logged values in each epoch from epoch 1 to the last logged one (epoch e holds the
            logs of epoch values (e-1, e]); NaN where an epoch has none, so that entry e - 1 stays epoch e."""
            by_epoch = defaultdict(list)
            for entry in history:
                if key in entry:
                    by_epoch[max(1, math.ceil(entry["epoch"] - 1e-9))].append(entry[key])
            return [float(np.mean(by_epoch[epoch])) if epoch in by_epoch else math.nan for epoch in
                    range(1, max(by_epoch, default=0) + 1)]  # fmt: skip

        return cls(
            method=method,
            accuracy_per_epoch=accuracies,
            best_accuracy=max(accuracies, default=math.nan),
            last_accuracy=accuracies[-1] if accuracies else math.nan,
            last_top5_accuracy=top5[-1] if top5 else math.nan,
            mean_weight_clean=after_burn_in("mentornet/mean_weight_clean"),
            mean_weight_noisy=after_burn_in("mentornet/mean_weight_noisy"),
            selection_precision=after_burn_in("mentornet/selection_precision"),
            selection_recall=after_burn_in("mentornet/selection_recall"),
            train_seconds=next(entry["train_runtime"] for entry in history if "train_runtime" in entry),
            memorised_per_epoch=[entry["eval_memorised"] for entry in history if "eval_memorised" in entry],
            corrected_per_epoch=[entry["eval_corrected"] for entry in history if "eval_corrected" in entry],
            mean_weight_clean_per_epoch=per_epoch("mentornet/mean_weight_clean"),
            mean_weight_noisy_per_epoch=per_epoch("mentornet/mean_weight_noisy"),
        )


def _num_labels(split: datasets.Dataset, label_column: str) -> int:
    feature = split.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes
    return int(max(split[label_column])) + 1


def _verified_rows(train: datasets.Dataset, label_column: str) -> dict[str, np.ndarray] | None:
    """The rows whose `clean_label` is known (not -1) and whether their label is wrong; None without any."""
    if "clean_label" not in train.column_names:
        return None
    columns = train.with_format("numpy", columns=[label_column, "clean_label"])[:]
    rows = np.flatnonzero(columns["clean_label"] >= 0)
    if not len(rows):
        return None
    return {"rows": rows, "wrong": columns[label_column][rows] != columns["clean_label"][rows]}


def _known_rows(
    train: datasets.Dataset, verified: dict[str, np.ndarray] | None, name: str, size: int, seed: int
) -> np.ndarray:
    """`size` training rows drawn at random with `seed` among those whose clean label is known (argument `name`)."""
    known = np.arange(len(train)) if verified is None else verified["rows"]
    if "clean_label" not in train.column_names or not 0 < size <= len(known):
        raise ValueError(
            f"`{name}`={size!r} must be in 1..{len(known)} (the training samples whose clean label is known), e.g. "
            f"{max(1, len(known) // 20)}."
        )
    return np.random.default_rng(seed).permutation(known)[:size]


def _check_student_outputs(student: nn.Module, train: datasets.Dataset, num_labels: int) -> None:
    """Refuse a student whose number of outputs is not the data's number of classes (one forward on one image)."""
    pixel_values = torch.as_tensor(train[0]["pixel_values"])[None]
    training = student.training
    with torch.no_grad():
        outputs = student_logits(student.eval(), pixel_values).shape[-1]
    student.train(training)
    if outputs != num_labels:
        raise ValueError(
            f"The student has {outputs} outputs, but the data has {num_labels} classes. Build it with "
            f"num_labels={num_labels} (timm: num_classes={num_labels}); a pretrained checkpoint with another head is "
            f"re-headed with `from_pretrained(..., num_labels={num_labels}, ignore_mismatched_sizes=True)` (timm: "
            "`model.reset_classifier(...)`)."
        )


def train_method(
    name: str,
    noisy: datasets.DatasetDict,
    student_factory: Callable[[], nn.Module],
    settings: dict[str, Any] | WeightedLossArguments,
    *,
    image_column: str = "image",
    label_column: str = "label",
    train_split: str = "train",
    test_split: str | None = "test",
    cifar_augmentation: bool = False,
    transform_kwargs: dict[str, Any] | None = None,
    callbacks: list[TrainerCallback] | None = None,
    curriculum_update_size: int = 0,
    curriculum_update_seed: int = 0,
    curriculum_update_dataset: datasets.Dataset | None = None,
    trusted_size: int = 0,
    trusted_dataset: datasets.Dataset | None = None,
    corrupted_fraction: float | None = None,
) -> tuple[RunSummary, WeightedLossTrainer]:
    """Train `student_factory()` with method `name` on `noisy[train_split]`, evaluating on `noisy[test_split]` every
    epoch. The training split holds noisy labels with `sample_index` and the truth where it is known: `clean_label`
    and `is_noisy` for every row, as [`inject_label_noise`] leaves them, or `clean_label` for the verified rows only
    (-1 elsewhere), as [`with_verified_labels`] leaves data that came noisy. The share of wrong labels (which picks
    the DD curriculum and co-teaching's forget rate) is `corrupted_fraction` if given, else `is_noisy`'s, else the
    verified rows'.

    Args:
        name: a key of [`METHODS`].
        noisy: the dataset.
        student_factory: builds a fresh, randomly initialised student (seeded with the run's seed first, so every
            method starts from the same student; co-teaching builds two in a row).
        settings: the arguments of the method's trainer, as keyword arguments or its arguments class
            ([`method_arguments`]).
        cifar_augmentation: the paper's CIFAR augmentation (pad 4, random crop, flip) on the training images.
        transform_kwargs: overrides of the student's image transform settings (`image_size`, `mean`, `std`,
            `in_chans`; see [`image_transforms`]).
        curriculum_update_size: with `curriculum_update_at`, the data-driven update (Algorithm 1 step 6)
            re-learns the MentorNet from the student's losses on this many training samples whose clean labels it
            is told: the paper's D', drawn at random with `curriculum_update_seed` among the rows whose
            `clean_label` is known. 0: the update re-fits the curriculum's predefined formula instead (see
            [`MentorNetTrainer`]).
        curriculum_update_dataset: instead of `curriculum_update_size`, the samples (noisy `label_column` and
            `clean_label`, e.g. a separate verified split) the data-driven update learns from; the eval transform
            is applied to them.
        trusted_size: for a method that learns its curriculum on-policy (`mentornet-dd-onpolicy`,
            `mentormix-dd-onpolicy`, or any MentorNet method given it): this many training rows whose clean label is known, drawn at random with
            `curriculum_update_seed`, are the trusted subset ([`MentorNetTrainer`]'s `trusted_dataset`). They stay
            in the training set with their given labels, so every method trains on the same images.
        trusted_dataset: instead of `trusted_size`, the trusted rows themselves (rows of `noisy[train_split]`).
        corrupted_fraction: the share of wrong training labels when it is known otherwise (e.g. estimated on a
            separate verified split).

    Returns:
        The [`RunSummary`] and the trainer (for saving the student, records, label issues).
    """
    for split in (train_split, test_split):
        if split is not None and split not in noisy:
            raise ValueError(f"The dataset has no split {split!r}; its splits are {list(noisy)}.")
    train = noisy[train_split]
    method = METHODS.get(name)  # an unknown name is refused by method_arguments
    if method is not None and method.clean_only and "is_noisy" not in train.column_names:
        raise ValueError(
            f"`method`={name!r} trains on the rows whose label is right, but `noisy[{train_split!r}]` has no "
            "`is_noisy` column that says which: inject the noise with `inject_label_noise`, which keeps the clean "
            "labels and flags the corrupted ones."
        )
    verified = _verified_rows(train, label_column)
    if "is_noisy" in train.column_names:
        is_noisy = np.asarray(train["is_noisy"], dtype=bool)
    if corrupted_fraction is None and "is_noisy" in train.column_names:
        corrupted_fraction = float(is_noisy.mean())
    elif corrupted_fraction is None and verified is not None:
        corrupted_fraction = float(verified["wrong"].mean())
        logger.info(
            f"{corrupted_fraction:.1%} of the {len(verified['rows'])} verified training rows have a wrong label: "
            "the estimated noise rate."
        )
    args = method_arguments(
        name,
        settings,
        corrupted_fraction=corrupted_fraction,
        overrides={"eval_strategy": "no" if test_split is None else "epoch"},
    )
    corrupted = None
    if "is_noisy" in train.column_names and is_noisy.any():
        corrupted = train.select(np.flatnonzero(is_noisy)).flatten_indices()
    if method.clean_only:
        # The ceiling of a perfect curriculum: the same student on the correctly labelled samples only.
        train = train.select(np.flatnonzero(~is_noisy)).flatten_indices()
    set_seed(args.seed)  # every method starts from the same initial student
    if method.student_wrapper is None:
        student = student_factory()
    else:
        student = method.student_wrapper(student_factory, _num_labels(train, label_column))
    # A wrapper takes the images of the student it wraps.
    base_student = student.student if isinstance(student, NoiseAdaptationLayer | CoTeachingPair) else student
    transform_kwargs = {"cifar_augmentation": cifar_augmentation, **(transform_kwargs or {})}

    def prepared(split: datasets.Dataset, train: bool) -> datasets.Dataset:
        transform = image_transforms(base_student, train=train, **transform_kwargs)
        return with_image_transform(split, transform, image_column=image_column, label_column=label_column)

    top_k = load_metric("top_k_accuracy")

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        return top_k.compute(predictions=prediction.predictions, references=prediction.label_ids, k=[1, 5])

    train_for_eval = prepared(train, train=False)
    extra: dict[str, Any] = {"label_issues_dataset": train_for_eval} if args.label_issues else {}
    if curriculum_update_size or curriculum_update_dataset is not None:
        given = (
            f"`curriculum_update_size`={curriculum_update_size!r}"
            if curriculum_update_size
            else "`curriculum_update_dataset`"
        )
        if not (method.trainer_class is MentorNetTrainer and args.curriculum_update_at):
            raise ValueError(
                f"{given} needs a MentorNet method with `curriculum_update_at` (got method {name!r}); e.g. "
                "curriculum_update_at=[0.21, 0.75]."
            )
    if curriculum_update_size and curriculum_update_dataset is not None:
        raise ValueError(
            "Both `curriculum_update_size` and `curriculum_update_dataset` are given; the update learns from one: "
            "drop one of them."
        )
    if trusted_size or trusted_dataset is not None:
        given = f"`trusted_size`={trusted_size!r}" if trusted_size else "`trusted_dataset`"
        if not issubclass(method.trainer_class, MentorNetTrainer):
            raise ValueError(
                f"{given} is the on-policy DD's trusted subset, which only a MentorNet method learns from (got method "
                f"{name!r}); use method 'mentornet-dd-onpolicy' or 'mentormix-dd-onpolicy'."
            )
        if trusted_size and trusted_dataset is not None:
            raise ValueError("Both `trusted_size` and `trusted_dataset` are given; drop one of them.")
    elif method.on_policy:
        raise ValueError(
            f"`method`={name!r} learns its curriculum from a trusted subset of the training rows: give `trusted_size` "
            "(e.g. 1000: training rows whose clean label is known) or `trusted_dataset`."
        )
    if trusted_size:
        rows = _known_rows(train, verified, "trusted_size", trusted_size, curriculum_update_seed)
        trusted_dataset = train.select(np.sort(rows))
    if trusted_dataset is not None:
        extra["trusted_dataset"] = trusted_dataset
    if curriculum_update_size:
        rows = _known_rows(train, verified, "curriculum_update_size", curriculum_update_size, curriculum_update_seed)
        extra["curriculum_update_dataset"] = train_for_eval.select(rows)
    if curriculum_update_dataset is not None:
        extra["curriculum_update_dataset"] = prepared(curriculum_update_dataset, train=False)
    if corrupted is not None and test_split is not None:
        # How many wrong labels the student fits, per epoch (the oracle's too: it never trains on them).
        extra["memorisation_dataset"] = prepared(corrupted, train=False)
    _check_student_outputs(base_student, train_for_eval, _num_labels(train, label_column))
    trainer = method.trainer_class(
        model=student,
        args=args,
        train_dataset=prepared(train, train=True),
        eval_dataset=None if test_split is None else prepared(noisy[test_split], train=False),
        data_collator=MentorNetCollator(),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        **extra,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    return RunSummary.from_trainer(name, trainer), trainer
