"""[`WeightedLossTrainer`]: the [`~transformers.Trainer`] that every method of this library builds on. It minimises
`sum_i v_i * l_i / b`, a weighted sum of per-sample losses; here every weight is exactly 1 (plain training), and a
subclass decides the weights ([`MentorNetTrainer`], the baselines of `hf_mentornet.baselines`).

What is shared lives here: splitting a batch into the student's inputs and the targets, calling transformers and
timm students, the per-sample loss, the number of samples of an optimizer step, the global batch across processes,
the paper's step learning-rate schedule, evaluation's plain loss, the weight metrics, the per-sample records and the
label-issue ranking."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Sized
from dataclasses import dataclass, field, fields
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi
from safetensors.torch import load_file, save_file
from timm.models._hub import save_config_for_hf  # what timm's own push_to_hf_hub writes
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, SchedulerType, TrainOutput, rotate_checkpoints
from transformers.utils import logging

from .features import RECORD_LOSS_PERCENTILES, LossPercentileAverages, loss_diff_column
from .label_issues import LabelIssueAggregates, rank_label_issues
from .noise import check_sample_index
from .records import StudentRecords

__all__ = ["WeightedLossArguments", "WeightedLossTrainer"]

logger = logging.get_logger(__name__)

TRAINER_STATE_FILE = "mentornet_trainer_state.pt"
# Per-sample state (label-issue sums, closed-form weights): its own file, so the state file stays small.
PER_SAMPLE_STATE_FILE = "mentornet_per_sample_state.safetensors"
# A checkpoint is written here first, then renamed into place: complete or absent.
CHECKPOINT_STAGING_DIR = ".checkpoint-staging"
STUDENT_RECORDS_DIR = "student_records"
LABEL_ISSUES_FILE = "label_issues.csv"
# Columns the student must not receive but the trainer needs; kept through `remove_unused_columns`.
TARGET_COLUMNS = ("labels", "sample_index", "clean_label")
# The label-issue ranking reads the weights from this fraction of training on (or from the end of burn-in).
LABEL_ISSUE_WINDOW_START = 0.5
# The trainer's own arguments that say how to report or where to write, not how to train: never a changed setting.
CONSOLE_AND_OUTPUT_ARGUMENTS = (
    "console_logs", "overwrite_output_dir", "push_run_files", "resume_with_different_settings"
)  # fmt: skip
# How torch and transformers word an input the student cannot take (channels, size): reworded as ours.
INPUT_MISMATCH_SIGNS = (
    "channel",
    "shapes cannot be multiplied",
    "size mismatch",
    "input image size",
    "expected input",
)
# transformers' label of a sample that does not train (`CrossEntropyLoss(ignore_index=-100)`).
IGNORE_INDEX = -100
# The optimizers whose weight decay `_scale_weight_decay` applies itself, on the device (their update rules are known).
DEVICE_DECAY_OPTIMIZERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
# The TrainingArguments that shape a run's training, beside the trainer's own fields: a resume that changes them is
# refused (see `resume_with_different_settings`), and the recipes keep them in `run_args.json`.
RUN_DEFINING_TRAINING_ARGUMENTS = (
    "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay", "optim",
    "optim_args", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "max_steps", "max_grad_norm",
    "label_smoothing_factor", "seed",
)  # fmt: skip


@dataclass
class WeightedLossArguments(TrainingArguments):
    r"""
    [`~transformers.TrainingArguments`] of [`WeightedLossTrainer`] and of every trainer built on it: the
    paper's step learning-rate schedule, the weight decay scaled by the batch's mean weight, the per-sample records
    and the label-issue ranking.
    """

    lr_decay_at: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Fractions of training at which the learning rate is multiplied by `lr_decay_factor`: the "
            "paper's step schedule (CIFAR: steps 19.5k, 25k and 30k of 39k = [0.5, 0.641, 0.769]). Empty: "
            "`lr_scheduler_type` decides."
        },
    )
    lr_decay_factor: float = field(
        default=0.1, metadata={"help": "The factor of each step of `lr_decay_at` (the paper: 0.1)."}
    )
    scale_weight_decay_by_mean_weight: bool = field(
        default=False,
        metadata={
            "help": "Scale the weight decay at each optimizer step by the batch's mean sample weight, "
            "theta_t = theta_0 * sum(v) / b (paper Appendix E.3). With plain training (every weight 1) it changes "
            "nothing."
        },
    )
    record_student: bool = field(
        default=False,
        metadata={
            "help": "Record per sample and step (sample_index, progress, epoch, label, clean_label, loss, weight, and "
            "the loss_diff features as a MentorNet is served them: loss_diff_p40 ... loss_diff_p90) and write them "
            "in parquet chunks to `output_dir/student_records` during training: the input of `learn_from_records`."
        },
    )
    label_issues: bool = field(
        default=False,
        metadata={
            "help": "After training, rank the training samples by how likely their label is wrong and write "
            "`output_dir/label_issues.csv`."
        },
    )
    console_logs: bool = field(
        default=False,
        metadata={
            "help": "Print every log dict on the console, as transformers' Trainer does. Off: the training progress "
            "bar shows the latest loss, mean weight and evaluation accuracy instead; the logs still reach "
            "`report_to` and `trainer.state.log_history`."
        },
    )
    push_run_files: bool = field(
        default=False,
        metadata={
            "help": "Upload the per-sample records, `label_issues.csv` and the TensorBoard runs with `push_to_hub` "
            "too. Off: only the student, its card and its curriculum go to the Hub."
        },
    )
    resume_with_different_settings: bool = field(
        default=False,
        metadata={
            "help": "Resume a checkpoint even when this run's settings (the trainer's own arguments, the curriculum, "
            "the batch size, learning rate, epochs, seed, ...) differ from the ones it was saved with. By default "
            "such a resume is refused with the list of differences."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Let a new run (not a resume) replace the `label_issues.csv` and `student_records/` of an "
            "earlier run in `output_dir`. By default a new run refuses to start there, so nothing is lost."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        decays = list(self.lr_decay_at)
        if any(not 0.0 < fraction < 1.0 for fraction in decays) or decays != sorted(decays):
            raise ValueError(
                f"`lr_decay_at`={decays!r} must be increasing fractions of training in (0, 1), e.g. [0.5, 0.641, 0.769]."
            )
        if not 0.0 < self.lr_decay_factor <= 1.0:
            raise ValueError(f"`lr_decay_factor`={self.lr_decay_factor!r} must be in (0, 1], e.g. 0.1.")
        default_scheduler = next(f.default for f in fields(TrainingArguments) if f.name == "lr_scheduler_type")
        if decays and self.lr_scheduler_type != default_scheduler:
            raise ValueError(
                f"`lr_decay_at`={decays!r} sets a step schedule, which replaces `lr_scheduler_type`="
                f"{SchedulerType(self.lr_scheduler_type).value!r}: leave one of them at its default."
            )


class _ProgressBarLogsCallback(ProgressCallback):
    """transformers' progress bar, showing the latest loss, mean weight and evaluation accuracy as its postfix instead
    of printing every log dict (`console_logs=False`): one bar per training run."""

    SHOWN = {"loss": "loss", "mentornet/mean_weight": "weight", "eval_loss": "eval loss"}

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        super().on_train_begin(args, state, control, **kwargs)
        self.postfix: dict[str, str] = {}

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs) -> None:
        # No second bar for the evaluations during training: its result shows in the training bar.
        if self.training_bar is None:
            super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not state.is_world_process_zero or self.training_bar is None:
            return
        shown = {label: logs[name] for name, label in self.SHOWN.items() if name in logs}
        shown |= {name[len("eval_") :]: value for name, value in logs.items() if name.endswith("top1_accuracy")}
        if shown:
            self.postfix |= {label: f"{value:.4g}" for label, value in shown.items()}
            self.training_bar.set_postfix(self.postfix, refresh=False)


class _ScaleWeightDecayCallback(TrainerCallback):
    """Sets the optimizer's weight decay to `theta_0 * mean(v)` of the step's batch just before each optimizer step
    (paper Appendix E.3)."""

    def __init__(self, trainer: WeightedLossTrainer) -> None:
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs) -> None:
        self.trainer._scale_weight_decay()


def save_atomically(path: str, write: Any) -> None:
    """Call `write(temporary_path)` and move the result to `path`, so a crash never leaves a half-written `path`."""
    temporary = f"{path}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    write(temporary)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(temporary, path)


class WeightedLossTrainer(Trainer):
    r"""
    Train a classifier on noisy labels by minimising `sum_i v_i * l_i / b`, with `l_i` the per-sample
    cross-entropy, `v_i` the sample's weight and `b` the number of samples of the whole optimizer step (all
    gradient-accumulation micro-batches on all processes), so that gradient accumulation and data parallelism give
    the gradient of one big batch. Here `v_i = 1` exactly: this trainer is plain training, the paper's FullModel /
    NoReg baseline; subclasses override [`~WeightedLossTrainer.sample_weights`] (and, for another loss,
    [`~WeightedLossTrainer.training_loss`]).

    The batches need `pixel_values` and integer `labels`; `sample_index` (a stable row index) is needed by the
    student records and the label-issue ranking; `clean_label`, when present, adds selection metrics
    (`mentornet/mean_weight_clean`, ...). Students are transformers image classifiers (called as
    `model(pixel_values=...)`, `.logits`) or plain `nn.Module`s such as timm models (`model(pixel_values)` returns the
    logits).

    Args:
        model (`PreTrainedModel` or `nn.Module`): the student.
        args ([`WeightedLossArguments`]): the training settings (a subclass's own arguments for a subclass).
        label_issues_dataset (`datasets.Dataset`, *optional*):
            The training samples as the label-issue ranking predicts them: the training set with the evaluation
            transform (no augmentation). Defaults to `train_dataset`.
        memorisation_dataset (`datasets.Dataset`, *optional*):
            Training samples whose label is wrong, with `clean_label` and the evaluation transform. At every
            evaluation of `eval_dataset` the trainer also logs `eval_memorised`, the share of them the student predicts
            as their wrong label (memorisation: the paper's Fig. 3), and `eval_corrected`, the share it predicts as
            their right one. Each process predicts all of them.
        compute_loss_func: not supported: the trainer computes the weighted loss itself.
        **kwargs: the other arguments of [`~transformers.Trainer`].
    """

    args_class: type[WeightedLossArguments] = WeightedLossArguments
    # `compute_loss` divides by the number of samples of the whole optimizer step (see `_get_num_items_in_batch`).
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: WeightedLossArguments | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        label_issues_dataset: datasets.Dataset | None = None,
        memorisation_dataset: datasets.Dataset | None = None,
        compute_loss_func: Any = None,
        **kwargs: Any,
    ) -> None:
        args = self._checked_args(args)
        if memorisation_dataset is not None and "clean_label" not in memorisation_dataset.column_names:
            raise ValueError(
                "`memorisation_dataset` needs a `clean_label` column (the right label of each sample, beside its "
                "given `labels`), to tell memorising a wrong label from predicting the right one; pass training "
                "samples as `inject_label_noise` leaves them."
            )
        if compute_loss_func is not None:
            raise ValueError(
                f"`compute_loss_func` cannot be combined with {type(self).__name__}, which computes the weighted "
                "per-sample loss itself. Use transformers' Trainer for a custom loss, or drop `compute_loss_func`."
            )
        if (
            isinstance(train_dataset, torch.utils.data.IterableDataset | datasets.IterableDataset)
            and args.max_steps <= 0
        ):
            raise ValueError(
                f"`train_dataset` is a streaming {type(train_dataset).__name__} and `max_steps`={args.max_steps}: "
                "the weights read training progress as global_step / max_steps, so set `max_steps` > 0."
            )
        if isinstance(train_dataset, Sized) and len(train_dataset) == 0:
            raise ValueError("`train_dataset` has no rows; pass the training samples.")
        if label_issues_dataset is not None and not args.label_issues:
            raise ValueError(
                "`label_issues_dataset` is given but `label_issues`=False, so it would never be used: set "
                "`label_issues=True` in the training arguments, or drop `label_issues_dataset`."
            )
        # Trainer's label smoother reads `model.config`, which plain nn.Modules lack, and is not used here:
        # `training_loss` applies `label_smoothing_factor` itself. Hide it from Trainer.__init__.
        label_smoothing_factor, args.label_smoothing_factor = args.label_smoothing_factor, 0.0
        self._checkpoint_staging_run_dir: str | None = None  # set while a checkpoint is saved
        super().__init__(model, args, data_collator, train_dataset, eval_dataset, processing_class, **kwargs)
        self.args.label_smoothing_factor = label_smoothing_factor
        self._student_is_transformers = isinstance(self.accelerator.unwrap_model(self.model), PreTrainedModel)
        if self.args.label_names is None:
            self.label_names = ["labels"]
        self.label_issues_dataset = label_issues_dataset
        self.memorisation_dataset = memorisation_dataset
        device = self.args.device
        self._metrics: dict[str, defaultdict[str, list[torch.Tensor]]] = {"train": defaultdict(list)}
        training_index = None
        if self.args.label_issues or self.args.record_student:
            training_index = check_training_index(self.train_dataset, "`label_issues` / `record_student`")
        self._label_issue_aggregates = None
        if self.args.label_issues:
            # Sized by the training set's index when it has one, so that counting a batch reads no index (no sync).
            num_samples = None if training_index is None else index_size(training_index)
            self._label_issue_aggregates = LabelIssueAggregates(device, num_samples)
        self._records = (
            StudentRecords(os.path.join(self.args.output_dir, STUDENT_RECORDS_DIR), write=self.args.should_save)
            if self.args.record_student
            else None
        )
        # The `loss_diff` features of the records, against moving loss percentiles as a MentorNetTrainer serves them.
        self._record_averages = (
            LossPercentileAverages(RECORD_LOSS_PERCENTILES, *self._moving_average_settings(), device)
            if self.args.record_student
            else None
        )
        if label_issues_dataset is not None:
            check_training_index(label_issues_dataset, "the label-issue ranking of `label_issues_dataset`")
        self._step_weight_sum = torch.zeros((), device=device)
        self._step_weight_count = torch.zeros((), dtype=torch.long, device=device)
        if self.args.scale_weight_decay_by_mean_weight:
            self.add_callback(_ScaleWeightDecayCallback(self))
        if not self.args.console_logs:
            self.pop_callback(PrinterCallback)
            if self.pop_callback(ProgressCallback) is not None:
                self.add_callback(_ProgressBarLogsCallback())

    @classmethod
    def _checked_args(cls, args: WeightedLossArguments | None) -> WeightedLossArguments:
        """`args`, or the defaults of `args_class`; anything but an `args_class` is refused."""
        args = cls.args_class(output_dir="trainer_output") if args is None else args
        if not isinstance(args, cls.args_class):
            raise TypeError(
                f"`args` is a {type(args).__name__}; {cls.__name__} needs {cls.args_class.__name__} (the same "
                "fields as TrainingArguments plus its own)."
            )
        return args

    @property
    def burn_in_steps(self) -> float:
        """The optimizer steps at the start of training whose weights are all 1 by design (a step `s` is in burn-in
        when `s < burn_in_steps`): none here."""
        return 0.0

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """`args.lr_decay_at` gives the paper's step schedule (x `lr_decay_factor` at those fractions of training),
        which `lr_scheduler_type` does not offer; otherwise as [`~transformers.Trainer`]."""
        if not self.args.lr_decay_at or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        milestones = [round(fraction * num_training_steps) for fraction in self.args.lr_decay_at]
        self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer or self.optimizer, milestones, gamma=self.args.lr_decay_factor
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    # ---- Columns and the student's forward ----

    def _remove_unused_columns(self, dataset: Any, description: str | None = None) -> Any:
        # A dataset with a lazy transform (`with_transform`, `with_image_transform`) reads stored columns that the
        # student's forward does not name (the image, the label): removing them would break the transform. What it
        # produces is passed on, and the student is given only what its forward takes.
        if isinstance(dataset, datasets.Dataset) and dataset.format["type"] == "custom":
            return dataset
        return super()._remove_unused_columns(dataset, description)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns += [
            name for name in ("pixel_values", *TARGET_COLUMNS) if name not in self._signature_columns
        ]

    @cached_property
    def _forward_input_names(self) -> frozenset[str]:
        """The names a transformers student's forward takes (worked out once, not at every step)."""
        self._set_signature_columns_if_needed()
        return frozenset(self._signature_columns)

    def _student_logits(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if "pixel_values" not in inputs:
            raise ValueError(
                f"The batch has no `pixel_values` (keys: {sorted(inputs)}); the student reads images as "
                "`pixel_values`: transform the dataset with `hf_mentornet.data.with_image_transform` (or a "
                "transform of your own that returns `pixel_values`)."
            )
        try:
            if self._student_is_transformers:
                # A lazy transform may produce more than the student's forward takes (`is_noisy`, ...).
                names = self._forward_input_names
                return model(**{name: value for name, value in inputs.items() if name in names}).logits
            return model(inputs["pixel_values"])
        except (RuntimeError, ValueError) as error:
            if not any(sign in str(error).lower() for sign in INPUT_MISMATCH_SIGNS):
                raise
            shape = tuple(inputs["pixel_values"].shape)
            raise ValueError(
                f"The student cannot read `pixel_values` of shape {shape}: {str(error)[:200]}. Its input channels "
                f"and image size must match the images' ({shape[1]} channels, {shape[2:]}): build it for them "
                "(`num_channels` / `in_chans`, `image_size`), or transform the images for it "
                "(`hf_mentornet.data.image_transforms(student, ...)`)."
            ) from error

    @staticmethod
    def _pop_targets(inputs: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor | None, dict[str, torch.Tensor]]:
        """Split a batch into the student's inputs, `labels` and the other targets (`sample_index`, `clean_label`)."""
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        targets = {name: inputs.pop(name) for name in TARGET_COLUMNS[1:] if name in inputs}
        for name, value in (("labels", labels), *targets.items()):
            if value is not None and (value.is_floating_point() or value.dim() != 1):
                raise ValueError(
                    f"`{name}` must be a 1-D integer tensor, got dtype {value.dtype} and shape {tuple(value.shape)}; "
                    "this trainer trains single-label classifiers on class indices (soft or float labels are not "
                    "supported: convert them to integer class ids)."
                )
        return inputs, labels, targets

    def _training_batch(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor, dict[str, torch.Tensor]]:
        inputs, labels, targets = self._pop_targets(inputs)
        if labels is None:
            raise ValueError(
                f"The batch has no `labels` (keys: {sorted(inputs)}); {type(self).__name__} needs the (noisy) class "
                "labels of the training samples under `labels`."
            )
        return inputs, labels, targets

    def _per_sample_loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        try:
            return F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=label_smoothing)
        except (IndexError, RuntimeError) as error:
            raise label_range_error(logits, labels) from error

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The per-sample training loss the weights multiply: the cross-entropy with `label_smoothing_factor`."""
        return self._per_sample_loss(logits, labels, self.args.label_smoothing_factor)

    # ---- The weighted loss ----

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """The number of samples of the whole optimizer step: all micro-batches, summed over processes. The weighted
        loss is divided by it, so that gradient accumulation and data parallelism give one big batch's gradient."""
        if not batch_samples:
            return None
        # Samples labelled -100 do not count, as in transformers.
        num_items = sum((batch["labels"] != IGNORE_INDEX).sum() for batch in batch_samples if "labels" in batch)
        num_items = torch.as_tensor(num_items).to(device)
        if self.accelerator.num_processes > 1:
            num_items = self.accelerator.gather(num_items).sum()
        return num_items.clamp_min(1)  # a step of -100 labels only has a zero loss, not 0 / 0

    def _denominator(self, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None) -> Any:
        """`b`: `num_items_in_batch` (the samples of the optimizer step over all micro-batches and processes) divided
        by the number of processes, whose gradients data parallelism averages; without it, the batch size."""
        if num_items_in_batch is None:
            return labels.shape[0]
        return num_items_in_batch / self.accelerator.num_processes

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The weighted loss `sum_i v_i * l_i / b` of a training batch, the weights decided on the global batch (all
        processes) by [`~WeightedLossTrainer.sample_weights`], so that N processes with batch b weight as one
        process with batch N*b."""
        inputs, labels, targets = self._training_batch(inputs)
        logits = self._student_logits(model, inputs)
        loss = self.weighted_loss(logits, labels, targets, self._denominator(labels, num_items_in_batch))
        return (loss, logits) if return_outputs else loss

    def weighted_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: dict[str, torch.Tensor], denominator: Any
    ) -> torch.Tensor:
        """`sum_i v_i * l_i / b` for the student's `logits` on this process's batch. A sample labelled -100
        (transformers' ignore index) or whose loss is not finite does not train: weight 0, no loss, no part in the
        weighting (the non-finite ones are reported in the logs)."""
        losses, usable = self._usable_losses(logits, labels)
        weights = self._batch_weights(losses.detach(), usable, labels, targets, logits.shape[-1])
        return (weights * losses).sum() / self.loss_denominator(denominator)

    def _batch_weights(
        self,
        losses: torch.Tensor,
        usable: torch.Tensor,
        labels: torch.Tensor,
        targets: dict[str, torch.Tensor],
        num_classes: int,
    ) -> torch.Tensor:
        """This process's part of the weights [`~WeightedLossTrainer.sample_weights`] decides on the global batch,
        0 where a sample does not train; the global batch's weights are observed (metrics, label issues, records)."""
        batch = {"loss": losses, "usable": usable, "label": labels, **targets}
        if self.accelerator.num_processes > 1:
            batch = self.accelerator.gather(batch)
        with torch.no_grad():
            weights = self.sample_weights(batch, num_classes).masked_fill(~batch["usable"], 0.0)
        self._observe_weights(batch, weights)
        return self._local_part(weights, losses.shape[0])

    def _local_part(self, values: torch.Tensor, size: int) -> torch.Tensor:
        """This process's rows of a tensor gathered over the processes (each contributing `size` rows)."""
        if self.accelerator.num_processes == 1:
            return values
        start = self.accelerator.process_index * size
        return values[start : start + size]

    def _usable_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-sample training losses, 0 where the sample does not train, and the mask of those that do."""
        ignored = labels == IGNORE_INDEX
        losses = self.training_loss(logits, labels.masked_fill(ignored, 0))
        usable = ~ignored & torch.isfinite(losses.detach())
        return losses.masked_fill(~usable, 0.0), usable

    def sample_weights(self, batch: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
        """The weights of the global batch's samples; 1 here. `batch` holds `loss`, `usable` (False for a sample
        that does not train, whose `loss` is 0 and whose weight is set to 0 afterwards: leave it out of batch
        statistics), `label` and the targets present."""
        return torch.ones_like(batch["loss"])

    def loss_denominator(self, denominator: Any) -> Any:
        """What the weighted loss sum is divided by; `b` here (a subclass may normalise otherwise)."""
        return denominator

    def _training_progress(self) -> tuple[int, int, int]:
        """`(global_step, max_steps, epoch)`, epoch being the paper's progress `min(99, floor(100 * step / max))`."""
        step, max_steps = self.state.global_step, max(self.state.max_steps, 1)
        return step, max_steps, min(99, 100 * step // max_steps)

    def _observe_weights(self, batch: dict[str, torch.Tensor], weights: torch.Tensor) -> None:
        """Count the weights of a global batch into the weight decay scale, the metrics, the label-issue aggregates
        and the records (the last three on the main process)."""
        if self.args.scale_weight_decay_by_mean_weight:
            self._step_weight_sum += weights.sum()
            self._step_weight_count += batch["usable"].sum()
        if not self.is_world_process_zero():
            return
        self._accumulate_metrics(weights, batch)
        if self._label_issue_aggregates is None and self._records is None:
            return
        step, max_steps, epoch = self._training_progress()
        progress = step / max_steps
        if self._label_issue_aggregates is not None:
            sample_index = required_column(batch, "sample_index", "the label-issue ranking (`label_issues=True`)")
            # The ranking averages the weights of the second half of training, after burn-in.
            if step >= max(self.burn_in_steps, LABEL_ISSUE_WINDOW_START * max_steps):
                self._label_issue_aggregates.add(sample_index, weights, batch["loss"], batch["usable"])
        if self._records is not None:
            required_column(batch, "sample_index", "the student records (`record_student=True`)")
            self._records.add(batch, weights, progress, epoch, self._record_features(batch))

    def _moving_average_settings(self) -> tuple[float, bool]:
        """The decay and bias correction of the records' moving loss percentiles: MentorNet's defaults here."""
        return 0.95, True

    def _record_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The records' `loss_diff_p<percent>` columns: each loss minus the moving average of that percentile of the
        batch losses, moved with this batch first, exactly as [`MentorNetTrainer`] computes the feature it serves."""
        averages = self._record_averages.update(batch["loss"], batch["usable"])
        return {
            loss_diff_column(percentile): batch["loss"] - averages[index]
            for index, percentile in enumerate(RECORD_LOSS_PERCENTILES)
        }

    @cached_property
    def _weight_decay_on_device(self) -> bool:
        """Whether `_scale_weight_decay` applies the decay itself (known once the optimizer exists)."""
        optimizer = self.optimizer.optimizer
        return (
            self.accelerator.scaler is None
            and isinstance(optimizer, DEVICE_DECAY_OPTIMIZERS)
            and not any(group.get("maximize") for group in optimizer.param_groups)
        )

    @torch.no_grad()
    def _scale_weight_decay(self) -> None:
        """Appendix E.3: `theta_t = theta_0 * sum(v) / b` over the optimizer step's samples. Scaling the param groups'
        `weight_decay` is right for both coupled (SGD: `grad += theta * w`) and decoupled (AdamW: `w -= lr * theta *
        w`) decay, where adding `theta * ||w||^2` to the loss would turn AdamW's decay into Adam's L2.

        The mean weight stays a device tensor for torch's SGD, Adam and AdamW without a gradient scaler (fp32,
        bf16): the scaled decay is applied here as those optimizers would apply it (`grad += theta_t * w`, or for
        decoupled decay `w *= 1 - lr * theta_t`, which AdamW does before its update too), their own `weight_decay`
        set to 0, so the step makes no host sync. Any other optimizer, or fp16's scaler (whose grads are still scaled
        here and whose step may be skipped), gets `theta_t` in its param groups, read with one host sync."""
        mean_weight = self._step_weight_sum / self._step_weight_count.clamp_min(1)
        groups = self.optimizer.param_groups
        for group in groups:
            group.setdefault("initial_weight_decay", group["weight_decay"])
        if self._weight_decay_on_device:
            for group in groups:
                group["weight_decay"] = 0.0
                params = [param for param in group["params"] if param.grad is not None]
                if not group["initial_weight_decay"] or not params:
                    continue
                decay = group["initial_weight_decay"] * mean_weight
                if group.get("decoupled_weight_decay"):
                    torch._foreach_mul_(params, 1.0 - group["lr"] * decay)
                else:
                    torch._foreach_add_([param.grad for param in params], torch._foreach_mul(params, decay))
        else:
            scale = mean_weight.item()
            for group in groups:
                group["weight_decay"] = group["initial_weight_decay"] * scale
        self._step_weight_sum.zero_()
        self._step_weight_count.zero_()

    # ---- Metrics ----

    def _accumulate_metrics(self, weights: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        metrics = self._metrics["train"]
        usable = batch["usable"].to(weights.dtype)
        metrics["weight_sum"].append(weights.sum())
        metrics["num_samples"].append(usable.sum())
        metrics["num_nonzero"].append((weights > 0).sum())
        metrics["num_nonfinite_losses"].append((~batch["usable"] & (batch["label"] != IGNORE_INDEX)).sum())
        if "clean_label" in batch:
            # A negative clean label marks a sample whose true label is unknown (unverified): left out of these.
            known = usable * (batch["clean_label"] >= 0).to(weights.dtype)
            clean = (batch["label"] == batch["clean_label"]).to(weights.dtype) * known
            selected = (weights > 0.5).to(weights.dtype) * known
            metrics["num_known"].append(known.sum())
            metrics["clean_weight_sum"].append((weights * clean).sum())
            metrics["num_clean"].append(clean.sum())
            metrics["noisy_weight_sum"].append((weights * (known - clean)).sum())
            metrics["num_selected"].append(selected.sum())
            metrics["num_selected_clean"].append((selected * clean).sum())

    def _metric_logs(self, metrics: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        """The logged means of the accumulated weight metrics."""
        total = {name: torch.stack(values).float().sum().item() for name, values in metrics.items()}
        num_samples = max(total["num_samples"], 1)
        logs = {
            "mentornet/mean_weight": total["weight_sum"] / num_samples,
            "mentornet/data_utilisation": total["num_nonzero"] / num_samples,
        }
        if total.get("num_nonfinite_losses"):
            logs["mentornet/num_nonfinite_losses"] = total["num_nonfinite_losses"]
            logger.warning(
                f"{int(total['num_nonfinite_losses'])} training losses were NaN or inf since the last log (step "
                f"{self.state.global_step}); those samples were given weight 0 and left out of the weighting. Check "
                "the inputs and the learning rate (or the fp16 loss scale) if this repeats."
            )
        # Each selection metric only when it has samples to be a share of (no corrupted sample: no noisy weight).
        num_noisy = total.get("num_known", 0.0) - total.get("num_clean", 0.0)
        for name, numerator, denominator in (
            ("mean_weight_clean", total.get("clean_weight_sum"), total.get("num_clean")),
            ("mean_weight_noisy", total.get("noisy_weight_sum"), num_noisy),
            ("selection_precision", total.get("num_selected_clean"), total.get("num_selected")),
            ("selection_recall", total.get("num_selected_clean"), total.get("num_clean")),
        ):
            if denominator:
                logs[f"mentornet/{name}"] = numerator / denominator
        return logs

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the means of the weight metrics since the last training log to it."""
        metrics = self._metrics["train"]
        if "loss" in logs and metrics:
            logs.update(self._metric_logs(metrics))
            metrics.clear()
        super().log(logs, start_time)

    # ---- Evaluation and predictions ----

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Logits and the plain, unweighted mean cross-entropy (no label smoothing): `eval_loss` measures the student,
        not the weighting."""
        inputs, labels, _ = self._pop_targets(self._prepare_inputs(inputs))
        with torch.no_grad():
            logits = self._student_logits(model, inputs)
            loss = None
            if labels is not None:
                labelled = labels != IGNORE_INDEX
                losses = self._per_sample_loss(logits, labels.masked_fill(~labelled, 0), 0.0)
                loss = (losses * labelled).sum() / labelled.sum().clamp_min(1)
        if prediction_loss_only:
            return loss, None, None
        return loss, logits, labels

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """As [`~transformers.Trainer.evaluate`]; an evaluation of `eval_dataset` also measures the memorisation of
        `memorisation_dataset` (`eval_memorised`, `eval_corrected`), logged in its own entry."""
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.memorisation_dataset is None or eval_dataset is not None:
            return metrics
        predictions = self._student_predictions(self.memorisation_dataset, "Memorisation")
        wrong = predictions["label"] != predictions["clean_label"]  # only the wrong labels can be memorised
        if not wrong.any():
            return metrics
        fit = {
            f"{metric_key_prefix}_memorised": float(
                (predictions["predicted_label"] == predictions["label"])[wrong].mean()
            ),
            f"{metric_key_prefix}_corrected": float(
                (predictions["predicted_label"] == predictions["clean_label"])[wrong].mean()
            ),
        }
        self.log(fit)
        return {**metrics, **fit}

    @torch.no_grad()
    def _student_predictions(self, dataset: Any, description: str = "Predicting") -> dict[str, np.ndarray]:
        """The current student's per-sample cross-entropy (the training loss's, unweighted) and predicted label on
        `dataset`, in eval mode, on this process alone (no sharding)."""
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        if isinstance(dataset, datasets.Dataset):
            dataset = self._remove_unused_columns(dataset, description="prediction")
        loader = DataLoader(
            dataset,
            batch_size=self.args.per_device_eval_batch_size,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
        )
        outputs = defaultdict(list)
        for batch in logging.tqdm(loader, desc=description, disable=self.args.disable_tqdm, leave=False):
            inputs, labels, targets = self._pop_targets(self._prepare_inputs(batch))
            logits = self._student_logits(model, inputs)
            losses = self._per_sample_loss(
                logits, labels.masked_fill(labels == IGNORE_INDEX, 0), self.args.label_smoothing_factor
            )
            outputs["loss"].append(losses)
            outputs["predicted_label"].append(logits.argmax(-1))
            outputs["label"].append(labels)
            for name, value in targets.items():
                outputs[name].append(value)
        model.train(was_training)
        return {name: torch.cat(values).cpu().numpy() for name, values in outputs.items()}

    # ---- Training end: records, label issues ----

    def train(self, *args: Any, **kwargs: Any) -> TrainOutput:
        """As [`~transformers.Trainer.train`]; then finishes the student records (`record_student`) and writes the
        label-issue ranking (`label_issues`) under `output_dir` (main process)."""
        resuming = args[0] if args else kwargs.get("resume_from_checkpoint")
        if not resuming and self.args.should_save:
            self._check_output_dir_unused()  # before training, not when the files are written
        output = super().train(*args, **kwargs)
        if self._records is not None and self.is_world_process_zero():
            self._records.flush()
        if self.args.label_issues:
            self.rank_label_issues()
        return output

    def _check_output_dir_unused(self) -> None:
        """Refuse to start a new run where an earlier run's label-issue ranking or student records would be
        replaced, unless `overwrite_output_dir`; with it, the earlier records are removed now."""
        earlier = []
        label_issues_path = os.path.join(self.args.output_dir, LABEL_ISSUES_FILE)
        if self.args.label_issues and os.path.exists(label_issues_path):
            earlier.append(label_issues_path)
        if self._records is not None and self._records.existing_chunks():
            earlier.append(self._records.directory)
        if not earlier:
            return
        if not self.args.overwrite_output_dir:
            raise ValueError(
                f"`output_dir`={self.args.output_dir!r} holds an earlier run's {', '.join(earlier)}, which this run "
                "would replace. Choose another `output_dir`, resume that run with `resume_from_checkpoint`, or set "
                "`overwrite_output_dir=True` to replace them."
            )
        if self._records is not None:
            self._records.remove()

    def student_records(self) -> datasets.Dataset:
        """The per-sample student records so far: one row per (sample, step) with `sample_index`, `progress`,
        `epoch`, `label`, `clean_label` (when known), `loss` and `weight` (the weight used): the input of
        [`learn_from_records`]. Kept with `args.record_student` (main process), in `output_dir/student_records`."""
        if self._records is None:
            raise ValueError(
                "No student records were kept: set `record_student=True` in the training arguments before training."
            )
        return self._records.dataset()

    def rank_label_issues(self, dataset: datasets.Dataset | None = None) -> datasets.Dataset:
        """Rank the samples of `dataset` (default: `label_issues_dataset`, else the training set) by how likely
        their label is wrong (see [`hf_mentornet.label_issues.rank_label_issues`]).

        Returns:
            `datasets.Dataset` with `sample_index`, `label`, `predicted_label`, `score`, `mean_weight` and
            `mean_loss`, most suspicious first; also written to `output_dir/label_issues.csv` by the main process.
        """
        if dataset is None:
            dataset = self.train_dataset if self.label_issues_dataset is None else self.label_issues_dataset
        predictions = self._student_predictions(dataset, description="Ranking label issues")
        required_column(predictions, "sample_index", "the label-issue ranking")
        aggregates = self._label_issue_aggregates or LabelIssueAggregates("cpu")
        issues = rank_label_issues(predictions, aggregates)
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
            path = os.path.join(self.args.output_dir, LABEL_ISSUES_FILE)
            save_atomically(path, lambda temporary: issues.to_pandas().to_csv(temporary, index=False))
        return issues

    # ---- Checkpoints ----

    def _run_settings(self) -> dict[str, Any]:
        """The settings a resumed run must share with its checkpoint: this trainer's own arguments and the
        TrainingArguments that shape training (`RUN_DEFINING_TRAINING_ARGUMENTS`); subclasses add theirs."""
        own = {f.name for f in fields(self.args)} - {f.name for f in fields(TrainingArguments)}
        own -= set(CONSOLE_AND_OUTPUT_ARGUMENTS)
        values = self.args.to_dict()
        # A JSON round trip, so that a saved and a current value compare alike (lists, not tuples).
        return json.loads(
            json.dumps({name: values[name] for name in sorted(own | set(RUN_DEFINING_TRAINING_ARGUMENTS))})
        )

    def _checkpoint_state(self) -> dict[str, Any]:
        """What a resumed run needs beyond Trainer's own checkpoint, small and independent of the run's length
        (per-sample state goes to [`~WeightedLossTrainer._per_sample_state`]); subclasses add theirs."""
        return {
            "settings": self._run_settings(),
            "metrics": dict(self._metrics["train"]),
            "num_record_chunks": None if self._records is None else self._records.flush(),
            "record_averages": None if self._record_averages is None else self._record_averages.state_dict(),
        }

    def _per_sample_state(self) -> dict[str, torch.Tensor]:
        """The per-sample tensors a resumed run needs, saved in their own safetensors file."""
        if self._label_issue_aggregates is None:
            return {}
        return {f"label_issues.{name}": tensor for name, tensor in self._label_issue_aggregates.state_dict().items()}

    def _load_checkpoint_state(
        self, state: dict[str, Any], per_sample: dict[str, torch.Tensor], checkpoint: str
    ) -> None:
        self._metrics["train"] = defaultdict(list, state["metrics"])
        if self._label_issue_aggregates is not None and "label_issues.count" in per_sample:
            self._label_issue_aggregates.load_state_dict(
                {name: per_sample[f"label_issues.{name}"] for name in ("weight_sum", "loss_sum", "count")}
            )
        if self._record_averages is not None and state.get("record_averages") is not None:
            self._record_averages.load_state_dict(state["record_averages"])
        if self._records is not None and state["num_record_chunks"] is not None:
            run_records = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), STUDENT_RECORDS_DIR)
            self._records.truncate(state["num_record_chunks"], run_records)

    def _save_checkpoint_files(self, checkpoint: str) -> None:
        """Write this trainer's own state into the checkpoint folder (subclasses add theirs)."""
        torch.save(self._checkpoint_state(), os.path.join(checkpoint, TRAINER_STATE_FILE))
        per_sample = {name: tensor.contiguous().cpu() for name, tensor in self._per_sample_state().items()}
        if per_sample:
            save_file(per_sample, os.path.join(checkpoint, PER_SAMPLE_STATE_FILE))

    def _get_output_dir(self, trial: Any) -> str:
        # While a checkpoint is saved, Trainer writes it into the staging folder (see `_save_checkpoint`).
        return self._checkpoint_staging_run_dir or super()._get_output_dir(trial=trial)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """As Trainer's, but complete or absent: Trainer and this trainer write the checkpoint into
        `<run dir>/.checkpoint-staging/checkpoint-<step>`, which is renamed into place once every file is written;
        only then are old checkpoints rotated out (`save_total_limit`). A crash at any point leaves the last complete
        checkpoint resumable, and `resume_from_checkpoint=True` never finds a partial one."""
        run_dir = self._get_output_dir(trial=trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_run_dir = os.path.join(run_dir, CHECKPOINT_STAGING_DIR)
        if self.args.should_save:
            shutil.rmtree(staging_run_dir, ignore_errors=True)  # what a crashed save left
            os.makedirs(os.path.join(staging_run_dir, name))
            self._save_checkpoint_files(os.path.join(staging_run_dir, name))
        self.accelerator.wait_for_everyone()
        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotate once the new one is complete
        self._checkpoint_staging_run_dir = staging_run_dir
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging_run_dir = None
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()
        if not self.args.should_save:
            return
        final = os.path.join(run_dir, name)
        if os.path.isdir(final):  # the same step saved again: the old copy is moved aside, then removed
            os.replace(final, os.path.join(staging_run_dir, "replaced"))
        os.replace(os.path.join(staging_run_dir, name), final)
        shutil.rmtree(staging_run_dir)
        best = self.state.best_model_checkpoint
        if best is not None and os.path.dirname(best) == staging_run_dir:
            self.state.best_model_checkpoint = os.path.join(run_dir, os.path.basename(best))
        rotate_checkpoints(
            output_dir=run_dir,
            save_total_limit=limit,
            best_model_checkpoint=self.state.best_model_checkpoint,
            use_mtime=True,
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        state, per_sample = self._read_checkpoint_state(resume_from_checkpoint)
        try:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        except Exception as error:  # safetensors, torch and transformers errors alike
            raise damaged_checkpoint_error(resume_from_checkpoint, "its model or optimizer files", error) from error
        try:
            self._load_checkpoint_state(state, per_sample, resume_from_checkpoint)
        except KeyError as error:
            path = os.path.join(resume_from_checkpoint, TRAINER_STATE_FILE)
            raise damaged_checkpoint_error(resume_from_checkpoint, path, error) from error

    def _read_checkpoint_state(self, checkpoint: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """This trainer's state in `checkpoint`, verified: readable, complete, and saved with this run's settings
        (unless `resume_with_different_settings`)."""
        path = os.path.join(checkpoint, TRAINER_STATE_FILE)
        if not os.path.isfile(path):
            raise ValueError(
                f"The checkpoint {checkpoint!r} has no {TRAINER_STATE_FILE}, so it was not saved by "
                f"{type(self).__name__} (a plain transformers Trainer checkpoint, or another method's?). Resume a "
                f"checkpoint saved by {type(self).__name__}, or start without `resume_from_checkpoint`."
            )
        # Distributed CPU runs name their device "cpu:<rank>", which torch.load cannot restore to.
        device = "cpu" if self.args.device.type == "cpu" else str(self.args.device)
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            saved = state["settings"]
        except Exception as error:  # any unreadable or incomplete file: named, with the way out
            raise damaged_checkpoint_error(checkpoint, path, error) from error
        per_sample = {}
        if self._per_sample_state():
            per_sample_path = os.path.join(checkpoint, PER_SAMPLE_STATE_FILE)
            try:
                per_sample = load_file(per_sample_path, device=device)
            except Exception as error:
                raise damaged_checkpoint_error(checkpoint, per_sample_path, error) from error
        current = self._run_settings()
        changed = sorted(name for name in saved.keys() | current.keys() if saved.get(name) != current.get(name))
        if changed and not self.args.resume_with_different_settings:
            differences = "; ".join(f"{name}: {saved.get(name)!r} -> {current.get(name)!r}" for name in changed)
            raise ValueError(
                f"The checkpoint {checkpoint!r} was saved with other settings than this run's ({differences}). "
                "Resume with the checkpoint's settings, or set `resume_with_different_settings=True` to continue "
                "with these."
            )
        if changed:
            logger.warning(f"Resuming {checkpoint!r} with settings that differ from its own: {changed}.")
        return state, per_sample

    def _model_card_lines(self) -> list[str]:
        """Lines added to the student's model card; subclasses say how they weighted the samples."""
        return [
            "",
            "## Training",
            "",
            f"Trained on noisy labels with `hf_mentornet.{type(self).__name__}` (`pip install hf_mentornet`). The "
            "training loss reported above is the weighted loss `sum_i v_i * l_i / b` of the samples' weights `v_i`, "
            "not the plain cross-entropy; `eval_loss` is the plain, unweighted cross-entropy.",
        ]

    def _save_hub_files(self, output_dir: str) -> None:
        """Write what goes to the Hub with the student besides Trainer's files: for a timm student its timm
        `config.json`, so that `timm.create_model("hf-hub:<repo>", pretrained=True)` loads it (subclasses add the
        curriculum)."""
        student = self.accelerator.unwrap_model(self.model)
        if not self._student_is_transformers and getattr(student, "pretrained_cfg", None) is not None:
            save_atomically(os.path.join(output_dir, "config.json"), partial(save_config_for_hf, student))

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """As [`~transformers.Trainer.save_model`]; a final save (not a checkpoint's) also writes what was trained
        with the student, for [`MentorNetTrainer`] its curriculum in `mentornet/`, as `push_to_hub` uploads it."""
        super().save_model(output_dir, _internal_call)
        if not _internal_call and self.args.should_save:
            self._save_hub_files(output_dir or self.args.output_dir)

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """As [`~transformers.Trainer.push_to_hub`]: the student, its card and, for [`MentorNetTrainer`], the
        curriculum it was trained with (subfolder `mentornet/`). The per-sample records, `label_issues.csv` and the
        TensorBoard runs stay local unless `push_run_files=True`."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        model_name = kwargs.pop("model_name", None) or Path(self.args.hub_model_id or self.args.output_dir).name
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self._save_hub_files(self.args.output_dir)
        self.create_model_card(model_name=model_name, **kwargs)
        self._finish_current_push()
        ignored = ["_*", f"{PREFIX_CHECKPOINT_DIR}-*", f"{CHECKPOINT_STAGING_DIR}/*"]
        if not self.args.push_run_files:
            ignored += [f"{STUDENT_RECORDS_DIR}/*", LABEL_ISSUES_FILE, "runs/*"]
        return HfApi().upload_folder(
            repo_id=self.hub_model_id,
            folder_path=self.args.output_dir,
            commit_message=commit_message,
            token=token,
            run_as_future=not blocking,
            ignore_patterns=ignored,
            revision=revision if revision is not None else self.args.hub_revision,
        )

    def create_model_card(self, *args: Any, tags: str | list[str] | None = None, **kwargs: Any) -> None:
        """As [`~transformers.Trainer.create_model_card`], tagged `mentornet` and `noisy-labels`, with how the
        samples were weighted."""
        tags = ["mentornet", "noisy-labels"] + ([tags] if isinstance(tags, str) else list(tags or []))
        if not self.is_world_process_zero():
            return
        path = os.path.join(self.args.output_dir, "README.md")
        if self._student_is_transformers:
            super().create_model_card(*args, tags=tags, **kwargs)
        else:
            # transformers' card reads `model.config`, which plain nn.Modules lack: start a minimal card instead.
            with open(path, "w") as card:
                card.write("---\ntags:\n" + "".join(f"- {tag}\n" for tag in tags) + "---\n")
        with open(path, "a") as card:
            card.write("\n".join(self._model_card_lines()) + "\n")


def damaged_checkpoint_error(checkpoint: str, what: str, error: BaseException) -> ValueError:
    folder = os.path.dirname(os.path.abspath(checkpoint))
    others = sorted(
        (name for name in os.listdir(folder) if name.startswith(f"{PREFIX_CHECKPOINT_DIR}-")),
        key=lambda name: int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else -1,
    )
    return ValueError(
        f"Cannot resume from {checkpoint!r}: {what} cannot be read ({type(error).__name__}: {error}). The checkpoint "
        f"is damaged or incomplete; resume from another checkpoint of the run ({', '.join(others) or 'none left'}), "
        "or start again without `resume_from_checkpoint`."
    )


def label_range_error(logits: torch.Tensor, labels: torch.Tensor) -> ValueError:
    return ValueError(
        f"`labels` must be class indices in 0..{logits.shape[-1] - 1} (the student has {logits.shape[-1]} "
        f"outputs), got values {int(labels.min())}..{int(labels.max())}."
    )


def required_column(batch: dict[str, Any], name: str, user: str) -> Any:
    if name not in batch:
        raise ValueError(
            f"The training data has no `{name}` column, needed by {user}: add a stable row index with "
            "`hf_mentornet.add_sample_index(dataset)` (inject_label_noise adds one) and keep it in the collator."
        )
    return batch[name]


def index_size(index: np.ndarray) -> int:
    """The size of a per-sample table over a checked training index: its largest `sample_index` + 1."""
    return int(index.max(initial=-1)) + 1


def check_training_index(dataset: Any, needed_by: str) -> np.ndarray | None:
    """The training set's `sample_index`, checked: present, integer, unique, non-negative, since per-sample state
    (records, label-issue sums, closed-form weights) would mix samples. `None` for other datasets (streams, torch
    datasets), checked batch by batch only."""
    if not isinstance(dataset, datasets.Dataset):
        return None
    required_column(dataset.features, "sample_index", needed_by)
    return check_sample_index(dataset, needed_by=f"needed by {needed_by}")
