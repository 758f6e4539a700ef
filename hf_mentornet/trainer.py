"""[`MentorNetTrainer`]: a [`~transformers.Trainer`] that weights every training sample by a curriculum, the SPADE
algorithm of Jiang et al. (ICML 2018, Algorithm 1)."""

from __future__ import annotations

import math
import os
import shutil
from collections import defaultdict
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import broadcast
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput
from transformers.utils import logging

from .baselines import (
    CoTeachingPair,
    co_teaching_forget_rate,
    co_teaching_weights,
    focal_loss,
    reed_hard_loss,
    reed_soft_loss,
    self_paced_threshold,
)
from .configuration_mentornet import MentorNetConfig
from .learning import learn_from_records, learn_predefined
from .modeling_mentornet import MentorNetModel, load_curriculum
from .training_args import MentorNetTrainingArguments

__all__ = ["MentorNetTrainer"]

logger = logging.get_logger(__name__)

MENTORNET_DIR = "mentornet"
TRAINER_STATE_FILE = "mentornet_trainer_state.pt"
STUDENT_RECORDS_DIR = "student_records"
LABEL_ISSUES_FILE = "label_issues.csv"
# Columns the student must not receive but the trainer needs; kept through `remove_unused_columns`.
TARGET_COLUMNS = ("labels", "sample_index", "clean_label")


class _ScaleWeightDecayCallback(TrainerCallback):
    """Sets the optimizer's weight decay to `theta_0 * mean(v)` of the step's batch just before each optimizer step
    (paper Appendix E.3)."""

    def __init__(self, trainer: MentorNetTrainer) -> None:
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs) -> None:
        self.trainer._scale_weight_decay()


def _save_atomically(path: str, write) -> None:
    """Call `write(temporary_path)` and move the result to `path`, so a crash never leaves a half-written `path`."""
    temporary = f"{path}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    write(temporary)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(temporary, path)


class MentorNetTrainer(Trainer):
    r"""
    Train a classifier (the StudentNet) on noisy labels with sample weights from a curriculum (Jiang et al., ICML 2018,
    Algorithm 1 "SPADE").

    At each step the per-sample cross-entropy `l_i` of the batch gives the MentorNet features: `l_i`,
    `l_i - l_pt` where `l_pt` is a moving average of the p-th percentile of the batch losses (of the losses of the
    sample's own label class with `loss_percentile_per_class`, an option beyond the paper), label 0 and the training
    progress `epoch = min(99, floor(100 * global_step / max_steps))`. The weights `v_i` (no gradient) come from the
    MentorNet (`curriculum_type="mentornet"`, step 11) or from a projected gradient step on Eq. 6 of the paper
    (`"closed-form"`, step 9); they are 1 during burn-in and example dropout zeroes a random part of them. The loss is
    `sum_i v_i * l_i / b`, with `b` the number of samples of the whole optimizer step (all gradient-accumulation
    micro-batches on all processes), so that gradient accumulation and data parallelism give the gradient of one big
    batch.

    The paper's baselines run through the same trainer (see `hf_mentornet.experiment.METHODS`): `args.loss_type`
    replaces the per-sample cross-entropy by the focal or Reed bootstrapping loss, `curriculum_type="self-paced"`
    weights by Kumar et al.'s growing loss threshold, and a `CoTeachingPair` student trains two networks that select
    small-loss samples for each other (`hf_mentornet.baselines`). Evaluation and the student records always use the
    plain cross-entropy.

    The batches need `pixel_values` and integer `labels`; `sample_index` (a stable row index) is needed by the
    closed-form branch, the student records and the label-issue ranking; `clean_label`, when present, adds selection
    metrics (`mentornet/mean_weight_clean`, ...). Students are transformers image classifiers (called as
    `model(pixel_values=...)`, `.logits`) or plain `nn.Module`s such as timm models (`model(pixel_values)` returns the
    logits).

    Args:
        model (`PreTrainedModel` or `nn.Module`): the student.
        args ([`MentorNetTrainingArguments`]): training and curriculum settings.
        curriculum ([`MentorNetModel`] or `str`, *optional*):
            The MentorNet, or its directory, shipped name or Hub id. Defaults to `args.curriculum`. With
            `args.curriculum_type="closed-form"` it is optional and only provides the training settings.
        curriculum_update_dataset (`datasets.Dataset`, *optional*):
            A small dataset with noisy `labels` and known `clean_label` on which the curriculum is re-learned at
            `args.curriculum_update_at` (data-driven update). Without it, the update re-fits the MentorNet to its
            predefined curriculum (`config.curriculum_name`) on the features the student recently produced.
        compute_loss_func: not supported: the trainer computes the weighted loss itself.
        **kwargs: the other arguments of [`~transformers.Trainer`].
    """

    # `compute_loss` divides by the number of samples of the whole optimizer step (see `_get_num_items_in_batch`).
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: MentorNetTrainingArguments | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        curriculum: MentorNetModel | str | os.PathLike | None = None,
        curriculum_update_dataset: datasets.Dataset | None = None,
        compute_loss_func: Any = None,
        **kwargs: Any,
    ) -> None:
        args = MentorNetTrainingArguments() if args is None else args
        if not isinstance(args, MentorNetTrainingArguments):
            raise TypeError(
                f"`args` is a {type(args).__name__}; MentorNetTrainer needs MentorNetTrainingArguments (same fields "
                "plus the curriculum settings)."
            )
        if compute_loss_func is not None:
            raise ValueError(
                "`compute_loss_func` cannot be combined with a curriculum: MentorNetTrainer computes the weighted "
                "per-sample loss itself. Use transformers' Trainer for a custom loss, or drop `compute_loss_func`."
            )
        if (
            isinstance(train_dataset, torch.utils.data.IterableDataset | datasets.IterableDataset)
            and args.max_steps <= 0
        ):
            raise ValueError(
                f"`train_dataset` is a streaming {type(train_dataset).__name__} and `max_steps`={args.max_steps}: "
                "the curriculum reads training progress as global_step / max_steps, so set `max_steps` > 0."
            )
        if args.curriculum_type == "mentornet":
            self.curriculum: MentorNetModel | None = load_curriculum(
                args.curriculum if curriculum is None else curriculum
            )
            config = self.curriculum.config
        else:
            self.curriculum = None if curriculum is None else load_curriculum(curriculum)
            config = MentorNetConfig() if curriculum is None else self.curriculum.config
            if args.curriculum_update_at:
                raise ValueError(
                    f"`curriculum_update_at`={args.curriculum_update_at!r} re-learns a MentorNet, but "
                    f"`curriculum_type`={args.curriculum_type!r} uses none; leave `curriculum_update_at` empty."
                )
        # Co-teaching (Han et al., 2018): the model holds two networks and the trainer selects samples across them.
        self._co_teaching = isinstance(model, CoTeachingPair)
        if self._co_teaching and args.co_teaching_forget_rate is None:
            raise ValueError(
                "`model` is a CoTeachingPair but `co_teaching_forget_rate` is None: set it to the estimated noise "
                "rate, e.g. 0.4 (run_experiment sets it from the noisy training split)."
            )
        if config.num_steps != 1:
            raise ValueError(
                f"The `curriculum` reads a loss history of num_steps={config.num_steps}, but MentorNetTrainer feeds "
                "only the current loss (per-sample loss histories are not implemented); use a curriculum with "
                "num_steps=1."
            )
        if args.curriculum_update_at and curriculum_update_dataset is None and not config.curriculum_name:
            raise ValueError(
                f"`curriculum_update_at`={args.curriculum_update_at!r} without a `curriculum_update_dataset` re-fits "
                "the MentorNet to its predefined curriculum, but the curriculum's config has no `curriculum_name`; "
                "pass a `curriculum_update_dataset` (noisy `labels` + `clean_label`) or a predefined curriculum."
            )
        self.loss_p_percentile = _override(args.loss_p_percentile, config.loss_p_percentile)
        self.loss_moving_average_decay = _override(args.loss_moving_average_decay, config.loss_moving_average_decay)
        self.burn_in_fraction = _override(args.burn_in_fraction, config.burn_in_fraction)
        self.fixed_epoch_after_burn_in = _override(args.fixed_epoch_after_burn_in, config.fixed_epoch_after_burn_in)
        self.example_dropout_schedule = _override(args.example_dropout_schedule, config.example_dropout_schedule)
        self.curriculum_update_dataset = curriculum_update_dataset

        # Trainer's label smoother reads `model.config`, which plain nn.Modules lack, and is not used here:
        # `compute_loss` applies `label_smoothing_factor` itself. Hide it from Trainer.__init__.
        label_smoothing_factor, args.label_smoothing_factor = args.label_smoothing_factor, 0.0
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        self.args.label_smoothing_factor = label_smoothing_factor
        device = self.args.device
        if self.curriculum is not None:
            self.curriculum = self.curriculum.to(device).eval()
        self._student_is_transformers = isinstance(self.accelerator.unwrap_model(self.model), PreTrainedModel)
        if self.args.label_names is None:
            self.label_names = ["labels"]

        # Per-run curriculum state, saved in checkpoints.
        self._loss_moving_average = torch.zeros((), device=device)
        self._dropout_generator = torch.Generator().manual_seed(self.args.seed)
        self._next_curriculum_update = 0
        self._closed_form_weights = None
        if self.args.curriculum_type == "closed-form":
            self._closed_form_weights = torch.ones(_num_samples(train_dataset), device=device)
        self._feature_buffer = None
        if self.args.curriculum_update_at and curriculum_update_dataset is None:
            size = self.args.curriculum_update_buffer_size
            self._feature_buffer = {
                "loss": torch.zeros(size, device=device),
                "loss_diff": torch.zeros(size, device=device),
                "epoch": torch.zeros(size, dtype=torch.long, device=device),
                "count": 0,
            }
        self._records: list[dict[str, Any]] = []
        self._keep_records = self.args.record_student or self.args.label_issues
        self._metrics: dict[str, defaultdict[str, list[torch.Tensor]]] = {"train": defaultdict(list)}
        self._step_weight_sum = torch.zeros((), device=device)
        self._step_weight_count = 0
        self._batch_mean_weight = torch.ones((), device=device)  # of the last global batch, for "weight_sum"
        # Co-teaching normalises its loss by the number of selected samples (Han et al.) and keeps the weight decay.
        if self.args.scale_weight_decay_by_mean_weight and not self._co_teaching:
            self.add_callback(_ScaleWeightDecayCallback(self))

        # Cumulative (end percent, rate) of the example-dropout schedule.
        self._dropout_boundaries = []
        end = 0.0
        for rate, percent in self.example_dropout_schedule or []:
            end += percent
            self._dropout_boundaries.append((end, rate))

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

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns += [
            name for name in ("pixel_values", *TARGET_COLUMNS) if name not in self._signature_columns
        ]

    def _student_logits(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self._student_is_transformers:
            return model(**inputs).logits
        return model(inputs["pixel_values"])

    @staticmethod
    def _pop_targets(inputs: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor | None, dict[str, torch.Tensor]]:
        """Split a batch into the student's inputs, `labels` and the other targets (`sample_index`, `clean_label`)."""
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        targets = {name: inputs.pop(name) for name in TARGET_COLUMNS[1:] if name in inputs}
        if labels is not None and (labels.is_floating_point() or labels.dim() != 1):
            raise ValueError(
                f"`labels` must be a 1-D integer tensor of class indices, got dtype {labels.dtype} and shape "
                f"{tuple(labels.shape)}; MentorNetTrainer trains single-label classifiers (cast with `.long()`)."
            )
        return inputs, labels, targets

    def _per_sample_loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        try:
            return F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=label_smoothing)
        except (IndexError, RuntimeError) as error:
            raise _label_range_error(logits, labels) from error

    def _training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The per-sample training loss of `args.loss_type` (the cross-entropy, or a baseline's loss)."""
        loss_type = self.args.loss_type
        if loss_type == "cross_entropy":
            return self._per_sample_loss(logits, labels, self.args.label_smoothing_factor)
        try:
            if loss_type == "focal":
                return focal_loss(logits, labels, self.args.focal_gamma)
            if loss_type == "reed-soft":
                return reed_soft_loss(logits, labels, self.args.reed_beta)
            return reed_hard_loss(logits, labels, self.args.reed_beta)
        except (IndexError, RuntimeError) as error:
            raise _label_range_error(logits, labels) from error

    # ---- The weighted loss ----

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """The number of samples of the whole optimizer step: all micro-batches, summed over processes. The weighted
        loss is divided by it, so that gradient accumulation and data parallelism give one big batch's gradient."""
        if not batch_samples:
            return None
        num_items = torch.tensor(sum(len(batch["labels"]) for batch in batch_samples if "labels" in batch))
        num_items = num_items.to(device)
        if self.accelerator.num_processes > 1:
            num_items = self.accelerator.gather(num_items).sum()
        return num_items

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The weighted loss `sum_i v_i * l_i / b` of a training batch.

        `b` is `num_items_in_batch` (the samples of the optimizer step over all micro-batches and processes) divided
        by the number of processes, whose gradients data parallelism averages; without it, the batch size. With
        `loss_normalization="weight_sum"`, `b` is further multiplied by the global batch's mean weight, so the
        processes' averaged gradients are those of `sum_i v_i * l_i / sum_i v_i`.
        """
        inputs, labels, targets = self._pop_targets(inputs)
        if labels is None:
            raise ValueError(
                f"The batch has no `labels` (keys: {sorted(inputs)}); MentorNetTrainer needs the (noisy) class labels "
                "of the training samples under `labels`."
            )
        logits = self._student_logits(model, inputs)
        if num_items_in_batch is None:
            denominator = labels.shape[0]
        else:
            denominator = num_items_in_batch / self.accelerator.num_processes
        if self._co_teaching and logits.dim() == 3:
            return self._co_teaching_loss(logits, labels, targets, denominator, return_outputs)
        losses = self._training_loss(logits, labels)
        weights = self._sample_weights(losses.detach(), labels, targets, logits.shape[-1])
        if self.args.loss_normalization == "weight_sum":
            # A batch whose weights are all 0 has a zero loss either way; the floor only avoids 0 / 0.
            denominator = denominator * self._batch_mean_weight.clamp_min(1e-12)
        loss = (weights * losses).sum() / denominator
        return (loss, logits) if return_outputs else loss

    def _co_teaching_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        targets: dict[str, torch.Tensor],
        denominator: torch.Tensor | int,
        return_outputs: bool,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Co-teaching (Han et al., 2018): both networks' mean loss over the samples their peer selected (on this
        process's batch). `logits` has shape `(2, b, m)`."""
        num_classes = logits.shape[-1]
        losses = self._training_loss(logits.reshape(-1, num_classes), labels.repeat(2)).view(2, -1)
        forget_rate = co_teaching_forget_rate(
            self.state.epoch or 0.0, self.args.co_teaching_forget_rate, self.args.co_teaching_ramp_epochs
        )
        weights = co_teaching_weights(losses.detach(), forget_rate)
        # Han et al. average over the kept samples: scale the usual 1/b by b / (number kept).
        kept_fraction = weights[0].sum() / labels.shape[0]
        loss = (weights * losses).sum() / (denominator * kept_fraction)
        if self.is_world_process_zero():
            self._accumulate_metrics(weights[0], {"loss": losses[0].detach(), "label": labels, **targets})
        return (loss, logits[0]) if return_outputs else loss

    @torch.no_grad()
    def _sample_weights(
        self, losses: torch.Tensor, labels: torch.Tensor, targets: dict[str, torch.Tensor], num_classes: int
    ) -> torch.Tensor:
        """The weights of this process's samples, decided on the global batch (all processes) so that every process
        agrees and N processes with batch b weight as one process with batch N*b."""
        batch = {"loss": losses, "label": labels, **targets}
        num_processes = self.accelerator.num_processes
        if num_processes > 1:
            batch = self.accelerator.gather(batch)
        loss = batch["loss"]
        step, max_steps = self.state.global_step, max(self.state.max_steps, 1)
        epoch = min(99, 100 * step // max_steps)

        loss_diff = self._update_loss_moving_average(loss, batch["label"], num_classes)
        mentornet_epoch = self._mentornet_epoch(epoch)

        if step < self.burn_in_fraction * max_steps:
            weights = torch.ones_like(loss)
        elif self._closed_form_weights is not None:
            weights = self._closed_form_step(loss, loss_diff, _required(batch, "sample_index", "closed-form"))
        elif self.args.curriculum_type == "self-paced":
            threshold = self_paced_threshold(
                loss, self.args.self_paced_percentile, self.args.self_paced_growth, math.floor(self.state.epoch or 0)
            )
            weights = (loss <= threshold).to(loss.dtype)
        else:
            weights = self.curriculum(loss=loss, loss_diff=loss_diff, epoch=mentornet_epoch).weights.to(loss.dtype)

        rate = self._dropout_rate(100.0 * step / max_steps)
        if rate > 0:
            size = loss.shape[0]
            # A uniformly random permutation: the positions holding its `keep` smallest values are a uniformly
            # random subset of that size. Drawn on the CPU generator shared (same seed) by every process.
            keep = torch.randperm(size, generator=self._dropout_generator) < math.floor(size * (1.0 - rate))
            weights = weights * keep.to(weights.device)

        self._batch_mean_weight = weights.mean()
        if self.args.scale_weight_decay_by_mean_weight:
            self._step_weight_sum += weights.sum()
            self._step_weight_count += weights.shape[0]
        if self._feature_buffer is not None:
            self._buffer_features(loss, loss_diff, mentornet_epoch)
        if self.is_world_process_zero():
            self._accumulate_metrics(weights, batch)
            if self._keep_records:
                self._record(batch, weights, step, max_steps, epoch)

        if num_processes > 1:
            size = losses.shape[0]
            weights = weights[self.accelerator.process_index * size : (self.accelerator.process_index + 1) * size]
        return weights

    def _update_loss_moving_average(self, loss: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Move the average of the p-th loss percentile (one per class with `loss_percentile_per_class`, of the classes
        in the batch) and return each sample's `loss_diff`, its loss minus the average it is compared with."""
        decay, p = self.loss_moving_average_decay, self.loss_p_percentile
        if not self.args.loss_percentile_per_class:
            self._loss_moving_average.mul_(decay).add_((1.0 - decay) * torch.quantile(loss, p))
            return loss - self._loss_moving_average
        if self._loss_moving_average.dim() == 0:
            self._loss_moving_average = torch.zeros(num_classes, device=loss.device)
        # Every class's percentile at once (no per-class loop or host sync in the step; WebVision has 1,000 classes):
        # sort by (label, loss) and interpolate inside each class's segment as `torch.quantile` does.
        order = loss.argsort()
        order = order[labels[order].argsort(stable=True)]
        sorted_loss = loss[order]
        counts = torch.bincount(labels, minlength=num_classes)
        position = (counts.cumsum(0) - counts) + p * (counts - 1).clamp_min(0)
        lower, upper = position.floor().long(), position.ceil().long()
        last = loss.shape[0] - 1  # classes absent from the batch index past the end; they are not moved
        below, above = sorted_loss[lower.clamp(max=last)], sorted_loss[upper.clamp(max=last)]
        percentile = below + (above - below) * (position - lower)
        moved = decay * self._loss_moving_average + (1.0 - decay) * percentile
        self._loss_moving_average = torch.where(counts > 0, moved, self._loss_moving_average)
        return loss - self._loss_moving_average[labels]

    def _mentornet_epoch(self, epoch: int) -> int:
        """The epoch feature the MentorNet is given at training progress `epoch` (clamped to the burn-in epoch
        with `fixed_epoch_after_burn_in`)."""
        if self.fixed_epoch_after_burn_in:
            return min(epoch, math.floor(100 * self.burn_in_fraction + 1e-6))
        return epoch

    def _closed_form_step(
        self, loss: torch.Tensor, loss_diff: torch.Tensor, sample_index: torch.Tensor
    ) -> torch.Tensor:
        """Algorithm 1 step 9 for the G of Eq. 5: one projected gradient step on Eq. 6 for the batch's weights,
        `v <- clip(v - alpha * (l + lambda2 * v - (lambda1 + lambda2)), 0, 1)`. With `alpha = 1 / lambda2` it lands
        on Eq. 7's minimiser `clip(1 - (l - lambda1) / lambda2, 0, 1)` in one step; smaller steps move the stored
        weight towards it over the sample's visits; with `lambda2 = 0` each visit moves it by `alpha * (lambda1 - l)`,
        towards the self-paced `1[l <= lambda1]`."""
        args = self.args
        lambda1, lambda2 = args.closed_form_lambda1, args.closed_form_lambda2
        alpha = args.closed_form_step_size or (1.0 / lambda2 if lambda2 > 0 else 1.0)
        current = loss_diff if args.closed_form_relative else loss
        weights = self._closed_form_weights[sample_index]
        weights = (weights - alpha * (current + lambda2 * weights - (lambda1 + lambda2))).clamp(0.0, 1.0)
        self._closed_form_weights[sample_index] = weights
        return weights

    def _dropout_rate(self, percent: float) -> float:
        for end, rate in self._dropout_boundaries:
            if percent < end:
                return rate
        return self._dropout_boundaries[-1][1] if self._dropout_boundaries else 0.0

    def _buffer_features(self, loss: torch.Tensor, loss_diff: torch.Tensor, epoch: int) -> None:
        buffer = self._feature_buffer
        size = buffer["loss"].shape[0]
        loss, loss_diff = loss[-size:], loss_diff[-size:]
        index = (torch.arange(loss.shape[0], device=loss.device) + buffer["count"]) % size
        buffer["loss"][index] = loss
        buffer["loss_diff"][index] = loss_diff
        buffer["epoch"][index] = epoch
        buffer["count"] += loss.shape[0]

    def _scale_weight_decay(self) -> None:
        """Appendix E.3: `theta_t = theta_0 * sum(v) / b` over the optimizer step's samples. Setting the param groups'
        `weight_decay` is right for both coupled (SGD: `grad += theta * w`) and decoupled (AdamW: `w -= lr * theta *
        w`) decay, where adding `theta * ||w||^2` to the loss would turn AdamW's decay into Adam's L2."""
        mean_weight = (self._step_weight_sum / max(self._step_weight_count, 1)).item()
        for group in self.optimizer.param_groups:
            group.setdefault("initial_weight_decay", group["weight_decay"])
            group["weight_decay"] = group["initial_weight_decay"] * mean_weight
        self._step_weight_sum.zero_()
        self._step_weight_count = 0

    # ---- Metrics and records ----

    def _accumulate_metrics(self, weights: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        metrics = self._metrics["train"]
        metrics["weight_sum"].append(weights.sum())
        metrics["num_samples"].append(torch.tensor(float(weights.shape[0])))
        metrics["num_nonzero"].append((weights > 0).sum())
        metrics["loss_moving_average"].append(self._loss_moving_average.clone())
        if "clean_label" in batch:
            clean = (batch["label"] == batch["clean_label"]).to(weights.dtype)
            selected = (weights > 0.5).to(weights.dtype)
            metrics["clean_weight_sum"].append((weights * clean).sum())
            metrics["num_clean"].append(clean.sum())
            metrics["noisy_weight_sum"].append((weights * (1 - clean)).sum())
            metrics["num_selected"].append(selected.sum())
            metrics["num_selected_clean"].append((selected * clean).sum())

    def _record(
        self, batch: dict[str, torch.Tensor], weights: torch.Tensor, step: int, max_steps: int, epoch: int
    ) -> None:
        record = {name: batch[name] for name in ("sample_index", "label", "clean_label", "loss") if name in batch}
        self._records.append({**record, "weight": weights, "progress": step / max_steps, "epoch": epoch})

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the means of the MentorNet metrics since the last training log to it."""
        metrics = self._metrics["train"]
        if "loss" in logs and metrics:
            total = {name: torch.stack(values).float().sum().item() for name, values in metrics.items()}
            logs["mentornet/mean_weight"] = total["weight_sum"] / total["num_samples"]
            logs["mentornet/data_utilisation"] = total["num_nonzero"] / total["num_samples"]
            logs["mentornet/loss_moving_average"] = metrics["loss_moving_average"][-1].mean().item()
            if "num_clean" in total:
                num_noisy = total["num_samples"] - total["num_clean"]
                logs["mentornet/mean_weight_clean"] = total["clean_weight_sum"] / max(total["num_clean"], 1)
                logs["mentornet/mean_weight_noisy"] = total["noisy_weight_sum"] / max(num_noisy, 1)
                logs["mentornet/selection_precision"] = total["num_selected_clean"] / max(total["num_selected"], 1)
                logs["mentornet/selection_recall"] = total["num_selected_clean"] / max(total["num_clean"], 1)
            metrics.clear()
        super().log(logs, start_time)

    def student_records(self) -> datasets.Dataset:
        """The per-sample student records so far: one row per (sample, step) with `sample_index`, `progress`,
        `epoch`, `label`, `clean_label` (when known), `loss` and `weight` (the weight used) — the input of
        [`learn_from_records`]. Kept when `args.record_student` or `args.label_issues` is set (main process)."""
        if not self._keep_records:
            raise ValueError(
                "No student records were kept: set `record_student=True` in MentorNetTrainingArguments before training."
            )
        columns: dict[str, np.ndarray] = {}
        sizes = [len(record["weight"]) for record in self._records]
        for name in ("sample_index", "label", "clean_label", "loss", "weight"):
            if self._records and name in self._records[0]:
                columns[name] = torch.cat([record[name] for record in self._records]).cpu().numpy()
        columns["progress"] = np.repeat([record["progress"] for record in self._records], sizes).astype(np.float32)
        columns["epoch"] = np.repeat([record["epoch"] for record in self._records], sizes).astype(np.int64)
        return datasets.Dataset.from_dict(columns)

    # ---- Curriculum update (Algorithm 1 step 6) ----

    def training_step(
        self, model: nn.Module, inputs: dict[str, torch.Tensor | Any], num_items_in_batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        fractions = self.args.curriculum_update_at
        while (
            self._next_curriculum_update < len(fractions)
            and self.state.global_step >= fractions[self._next_curriculum_update] * self.state.max_steps
        ):
            self._update_curriculum()
            self._next_curriculum_update += 1
        return super().training_step(model, inputs, num_items_in_batch)

    def _update_curriculum(self) -> None:
        """Re-learn the MentorNet from the current student (warm-started from the current MentorNet). The main process
        learns, the others receive its parameters, so every process continues with the same MentorNet. Only the
        MentorNet's parameters change: the training settings (percentile, decay, burn-in, dropout) stay as resolved
        when the trainer was built."""
        args, step = self.args, self.state.global_step
        # Records carry the epoch feature the MentorNet will be given from now on, so that what it learns is
        # what it is asked (with `fixed_epoch_after_burn_in`, the burn-in epoch, not the current one).
        epoch = self._mentornet_epoch(min(99, 100 * step // max(self.state.max_steps, 1)))
        learned, fit = self.curriculum, {}
        if self.accelerator.is_main_process:
            if self.curriculum_update_dataset is not None:
                predictions = self._student_predictions(self.curriculum_update_dataset)
                records = {
                    "epoch": np.full(len(predictions["loss"]), epoch, dtype=np.int64),
                    "label": predictions["label"],
                    "clean_label": predictions["clean_label"],
                    "loss": predictions["loss"],
                }
                learned, metrics = learn_from_records(
                    records,
                    curriculum_name=self.curriculum.config.curriculum_name or "data-driven",
                    max_steps=args.curriculum_update_steps,
                    seed=args.seed,
                    init_model=self.curriculum.cpu(),
                )
                source = f"{len(records['loss'])} records of `curriculum_update_dataset`"
                fit = {"mentornet/update_heldout_auroc": metrics["heldout_auroc"]}
            else:
                buffer = self._feature_buffer
                num_features = min(buffer["count"], buffer["loss"].shape[0])
                features = {name: buffer[name][:num_features].cpu() for name in ("loss", "loss_diff", "epoch")}
                config = self.curriculum.config
                learned, metrics = learn_predefined(
                    config.curriculum_name,
                    config.curriculum_params,
                    max_steps=args.curriculum_update_steps,
                    seed=args.seed,
                    init_model=self.curriculum.cpu(),
                    features=features,
                )
                source = f"{num_features} recent student features, target {config.curriculum_name!r}"
                fit = {"mentornet/update_test_mse": metrics["test_mse"]}
            logger.info(f"Step {step}: re-learned the MentorNet on {source}: {metrics}")
        learned = learned.to(args.device).eval()
        if self.accelerator.num_processes > 1:
            for tensor in learned.state_dict().values():
                tensor.copy_(broadcast(tensor.contiguous(), from_process=0))
        self.curriculum = learned
        # The fit's quality is known on the main process only, which is the one that reports.
        self.log({"mentornet/curriculum_update": float(self._next_curriculum_update + 1), **fit})

    @torch.no_grad()
    def _student_predictions(self, dataset: Any) -> dict[str, np.ndarray]:
        """The current student's per-sample loss (the training loss, unweighted) and predicted label on `dataset`, in
        eval mode, on this process alone (no sharding)."""
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        if isinstance(dataset, datasets.Dataset):
            dataset = self._remove_unused_columns(dataset, description="prediction")
        loader = DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size, collate_fn=self.data_collator)
        outputs = defaultdict(list)
        for batch in loader:
            inputs, labels, targets = self._pop_targets(self._prepare_inputs(batch))
            logits = self._student_logits(model, inputs)
            outputs["loss"].append(self._per_sample_loss(logits, labels, self.args.label_smoothing_factor))
            outputs["predicted_label"].append(logits.argmax(-1))
            outputs["label"].append(labels)
            for name, value in targets.items():
                outputs[name].append(value)
        model.train(was_training)
        return {name: torch.cat(values).cpu().numpy() for name, values in outputs.items()}

    # ---- Evaluation ----

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Logits and the plain, unweighted mean cross-entropy (no label smoothing): `eval_loss` measures the student,
        not the curriculum."""
        inputs, labels, _ = self._pop_targets(self._prepare_inputs(inputs))
        with torch.no_grad():
            logits = self._student_logits(model, inputs)
            loss = None if labels is None else self._per_sample_loss(logits, labels, 0.0).mean()
        if prediction_loss_only:
            return loss, None, None
        return loss, logits, labels

    # ---- Training end: records, label issues ----

    def train(self, *args: Any, **kwargs: Any) -> TrainOutput:
        """As [`~transformers.Trainer.train`]; then writes the student records (`record_student`) and the label-issue
        ranking (`label_issues`) under `output_dir` (main process)."""
        output = super().train(*args, **kwargs)
        if self.args.record_student and self.args.should_save:
            records = self.student_records()
            _save_atomically(os.path.join(self.args.output_dir, STUDENT_RECORDS_DIR), records.save_to_disk)
        if self.args.label_issues:
            self.rank_label_issues()
        return output

    def rank_label_issues(self, dataset: datasets.Dataset | None = None) -> datasets.Dataset:
        """Rank the samples of `dataset` (default: the training set) by how likely their label is wrong.

        The score is `(1 - mean weight) + 1[predicted label != given label]`: the mean weight the curriculum gave the
        sample over the last part of training (from the second half, after burn-in; 1 when the sample has no
        records, which are kept with `record_student` or `label_issues`) and the final student's prediction. Ties
        are broken by the sample's mean recorded loss (the final loss when it has none).

        Returns:
            `datasets.Dataset` with `sample_index`, `label`, `predicted_label`, `score`, `mean_weight` and
            `mean_loss`, most suspicious first; also written to `output_dir/label_issues.csv` by the main process.
        """
        dataset = self.train_dataset if dataset is None else dataset
        predictions = self._student_predictions(dataset)
        sample_index = _required(predictions, "sample_index", "the label-issue ranking")
        mean_weight = np.ones(len(sample_index))
        mean_loss = predictions["loss"].astype(np.float64)
        if self._keep_records and self._records:
            records = self.student_records()
            start = max(self.burn_in_fraction, 0.5)
            window = np.asarray(records["progress"]) >= start
            if not window.any():
                window[:] = True
            recorded_index = np.asarray(records["sample_index"])[window]
            size = max(int(recorded_index.max()), int(sample_index.max())) + 1
            counts = np.bincount(recorded_index, minlength=size)
            weight_sums = np.bincount(recorded_index, weights=np.asarray(records["weight"])[window], minlength=size)
            loss_sums = np.bincount(recorded_index, weights=np.asarray(records["loss"])[window], minlength=size)
            seen = counts[sample_index] > 0
            mean_weight[seen] = weight_sums[sample_index][seen] / counts[sample_index][seen]
            mean_loss[seen] = loss_sums[sample_index][seen] / counts[sample_index][seen]
        score = (1.0 - mean_weight) + (predictions["predicted_label"] != predictions["label"])
        order = np.lexsort((-mean_loss, -score))
        issues = datasets.Dataset.from_dict(
            {
                "sample_index": sample_index[order],
                "label": predictions["label"][order],
                "predicted_label": predictions["predicted_label"][order],
                "score": score[order],
                "mean_weight": mean_weight[order],
                "mean_loss": mean_loss[order],
            }
        )
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
            path = os.path.join(self.args.output_dir, LABEL_ISSUES_FILE)
            _save_atomically(path, issues.to_csv)
        return issues

    # ---- Checkpoints ----

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if not self.args.should_save:
            return
        output_dir = os.path.join(
            self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        if self.curriculum is not None:
            _save_atomically(os.path.join(output_dir, MENTORNET_DIR), self.curriculum.save_pretrained)
        state = {
            "loss_moving_average": self._loss_moving_average,
            "dropout_generator": self._dropout_generator.get_state(),
            "next_curriculum_update": self._next_curriculum_update,
            "closed_form_weights": self._closed_form_weights,
            "feature_buffer": self._feature_buffer,
            "metrics": dict(self._metrics["train"]),
            "records": self._records,
        }
        _save_atomically(os.path.join(output_dir, TRAINER_STATE_FILE), lambda path: torch.save(state, path))
        if self.args.record_student:
            _save_atomically(os.path.join(output_dir, STUDENT_RECORDS_DIR), self.student_records().save_to_disk)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        device = self.args.device
        mentornet_dir = os.path.join(resume_from_checkpoint, MENTORNET_DIR)
        if os.path.isdir(mentornet_dir):
            self.curriculum = MentorNetModel.from_pretrained(mentornet_dir).to(device).eval()
        state = torch.load(os.path.join(resume_from_checkpoint, TRAINER_STATE_FILE), map_location=device)
        self._loss_moving_average = state["loss_moving_average"]
        self._dropout_generator.set_state(state["dropout_generator"].cpu())
        self._next_curriculum_update = state["next_curriculum_update"]
        self._closed_form_weights = state["closed_form_weights"]
        self._feature_buffer = state["feature_buffer"]
        self._metrics["train"] = defaultdict(list, state["metrics"])
        self._records = state["records"]

    def create_model_card(self, *args: Any, tags: str | list[str] | None = None, **kwargs: Any) -> None:
        """As [`~transformers.Trainer.create_model_card`], tagged `mentornet` and `noisy-labels`, with the curriculum
        the student was trained with."""
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
        config = self.curriculum.config if self.curriculum is not None else None
        per_class = self.args.loss_percentile_per_class
        lines = [
            "",
            "## Curriculum (MentorNet)",
            "",
            "Trained with `hf_mentornet.MentorNetTrainer` (Jiang et al., ICML 2018, Algorithm 1).",
            "",
            f"- curriculum type: {self.args.curriculum_type}",
            f"- curriculum: {config.curriculum_name if config is not None else 'closed form (Eq. 7)'}",
            f"- loss percentile: {self.loss_p_percentile}{' per label class' if per_class else ''}, moving-average "
            f"decay: {self.loss_moving_average_decay}",
            f"- burn-in fraction: {self.burn_in_fraction}, fixed epoch after burn-in: {self.fixed_epoch_after_burn_in}",
            f"- example dropout schedule: {self.example_dropout_schedule}",
            f"- curriculum updates at: {list(self.args.curriculum_update_at)}",
        ]
        with open(path, "a") as card:
            card.write("\n".join(lines) + "\n")


def _label_range_error(logits: torch.Tensor, labels: torch.Tensor) -> ValueError:
    return ValueError(
        f"`labels` must be class indices in 0..{logits.shape[-1] - 1} (the student has {logits.shape[-1]} "
        f"outputs), got values {int(labels.min())}..{int(labels.max())}."
    )


def _override(value: Any, default: Any) -> Any:
    return default if value is None else value


def _required(batch: dict[str, Any], name: str, user: str) -> Any:
    if name not in batch:
        raise ValueError(
            f"The batch has no `{name}` column, needed by {user}: add a stable row index (e.g. "
            "`dataset.add_column('sample_index', list(range(len(dataset))))`) and keep it in the collator."
        )
    return batch[name]


def _num_samples(train_dataset: Any) -> int:
    """Size of the per-sample weight table of the closed-form branch: the largest `sample_index` + 1."""
    if isinstance(train_dataset, datasets.Dataset) and "sample_index" in train_dataset.column_names:
        return int(max(train_dataset["sample_index"])) + 1
    if isinstance(train_dataset, torch.utils.data.IterableDataset | datasets.IterableDataset) or train_dataset is None:
        raise ValueError(
            "`curriculum_type`='closed-form' keeps one weight per training sample and needs a sized `train_dataset` "
            "(a datasets.Dataset with a `sample_index` column)."
        )
    return len(train_dataset)
