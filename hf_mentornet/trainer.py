"""[`MentorNetTrainer`]: a [`~transformers.Trainer`] that weights every training sample by a curriculum, the SPADE
algorithm of Jiang et al. (ICML 2018, Algorithm 1)."""

from __future__ import annotations

import copy
import hashlib
import math
import os
from typing import Any

import datasets
import numpy as np
import torch
from accelerate.utils import broadcast
from torch import nn
from transformers import PreTrainedModel
from transformers.trainer_utils import has_length
from transformers.utils import logging

from .configuration_mentornet import MentorNetConfig
from .hub import load_curriculum, save_curriculum
from .learning import learn_from_records, learn_predefined
from .modeling_mentornet import MentorNetModel
from .training_args import CURRICULUM_SETTINGS, MentorNetTrainingArguments
from .weighted_trainer import (
    WeightedLossTrainer,
    check_training_index,
    damaged_checkpoint_error,
    index_size,
    required_column,
)

__all__ = ["MentorNetTrainer"]

logger = logging.get_logger(__name__)

MENTORNET_DIR = "mentornet"


class MentorNetTrainer(WeightedLossTrainer):
    r"""
    Train a classifier (the StudentNet) on noisy labels with sample weights from a curriculum (Jiang et al., ICML 2018,
    Algorithm 1 "SPADE").

    At each step the per-sample cross-entropy `l_i` of the global batch gives the MentorNet features: `l_i`,
    `l_i - l_pt` where `l_pt` is a moving average of the p-th percentile of the batch losses (of the losses of the
    sample's own label class with `loss_percentile_per_class`, an option beyond the paper), label 0 and the training
    progress `epoch = min(99, floor(100 * global_step / max_steps))`. The weights `v_i` (no gradient) come from the
    MentorNet (`curriculum_type="mentornet"`, step 11) or from a projected gradient step on Eq. 6 of the paper
    (`"closed-form"`, step 9); they are 1 during burn-in and example dropout zeroes a random part of them. The loss is
    `sum_i v_i * l_i / b` (see [`WeightedLossTrainer`]). `curriculum_update_at` re-learns the MentorNet during
    training (step 6).

    The curriculum's training settings (`loss_p_percentile`, `loss_moving_average_decay`, `burn_in_fraction`,
    `fixed_epoch_after_burn_in`, `example_dropout_schedule`) left `None` in the arguments are resolved from its
    config when the trainer is built: `trainer.args` holds the values used.

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
        **kwargs: the other arguments of [`WeightedLossTrainer`].
    """

    args_class = MentorNetTrainingArguments

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | None = None,
        args: MentorNetTrainingArguments | None = None,
        *,
        curriculum: MentorNetModel | str | os.PathLike | None = None,
        curriculum_update_dataset: datasets.Dataset | None = None,
        **kwargs: Any,
    ) -> None:
        args = self._checked_args(args)  # before the base's own call: the curriculum is read from it first
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
        if (
            isinstance(curriculum_update_dataset, datasets.Dataset)
            and "clean_label" not in curriculum_update_dataset.column_names
        ):
            raise ValueError(
                "`curriculum_update_dataset` has no `clean_label` column (columns: "
                f"{curriculum_update_dataset.column_names}): the data-driven update learns from the noisy labels and "
                "their known `clean_label`."
            )
        if curriculum_update_dataset is not None and not args.curriculum_update_at:
            raise ValueError(
                "`curriculum_update_dataset` is given but `curriculum_update_at` is empty, so the curriculum is never "
                "re-learned from it: set `curriculum_update_at`, e.g. [0.21, 0.75], or drop the dataset."
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
        # "None: the curriculum's value", resolved here once, on a copy of the caller's arguments.
        args = copy.copy(args)
        burn_in_given = args.burn_in_steps is not None or args.burn_in_epochs is not None
        for name in CURRICULUM_SETTINGS:
            if getattr(args, name) is None and not (name == "burn_in_fraction" and burn_in_given):
                setattr(args, name, getattr(config, name))
        self.curriculum_update_dataset = curriculum_update_dataset
        self._initial_curriculum = None if self.curriculum is None else curriculum_fingerprint(self.curriculum)
        super().__init__(model=model, args=args, **kwargs)
        device = self.args.device
        if self.curriculum is not None:
            self.curriculum = self.curriculum.to(device).eval()

        # Per-run curriculum state, saved in checkpoints.
        # The moving loss percentile: its exponential sum, its number of steps t, and the average the features use.
        self._loss_average_sum = torch.zeros((), device=device)
        self._loss_average_steps = torch.zeros((), dtype=torch.long, device=device)
        self._loss_moving_average = torch.zeros((), device=device)
        # On the training device, so the dropout mask is drawn there (no copy, no host sync in the step).
        self._dropout_generator = torch.Generator(device=device).manual_seed(self.args.seed)
        self._curriculum_inputs_checked = False
        self._next_curriculum_update = 0
        self._closed_form_weights = None
        if self.args.curriculum_type == "closed-form":
            self._closed_form_weights = torch.ones(_num_samples(self.train_dataset), device=device)
        self._feature_buffer = None
        if self.args.curriculum_update_at and curriculum_update_dataset is None:
            size = self.args.curriculum_update_buffer_size
            self._feature_buffer = {
                "loss": torch.zeros(size, device=device),
                "loss_diff": torch.zeros(size, device=device),
                "epoch": torch.zeros(size, dtype=torch.long, device=device),
                "count": 0,
            }
        self._batch_mean_weight = torch.ones((), device=device)  # of the last global batch, for "weight_sum"
        # Optimizer steps per epoch, known once training starts (`set_initial_training_values`).
        self._update_steps_per_epoch: int | None = None
        if self.args.burn_in_epochs is not None or self.args.example_dropout_schedule_unit == "epochs":
            if not has_length(self.train_dataset):
                raise ValueError(
                    "`burn_in_epochs` / `example_dropout_schedule_unit`='epochs' count epochs, which a `train_dataset` "
                    "without a length (a stream) does not have: give them in steps (`burn_in_steps`, "
                    "`example_dropout_schedule_unit`='steps')."
                )
        # Cumulative (end, rate) of the example-dropout schedule, the ends in its unit.
        self._dropout_boundaries = []
        end = 0.0
        for rate, percent in self.args.example_dropout_schedule or []:
            end += percent
            self._dropout_boundaries.append((end, rate))

    def set_initial_training_values(self, args: Any, dataloader: Any) -> tuple[Any, ...]:
        values = super().set_initial_training_values(args, dataloader)
        self._update_steps_per_epoch = values[1]  # the optimizer steps of one pass over the data
        return values

    @property
    def burn_in_steps(self) -> float:
        """The burn-in in optimizer steps, from `burn_in_steps`, `burn_in_epochs` or `burn_in_fraction`."""
        args = self.args
        if args.burn_in_steps is not None:
            return float(args.burn_in_steps)
        if args.burn_in_epochs is not None:
            return args.burn_in_epochs * self._steps_per_epoch()
        return args.burn_in_fraction * max(self.state.max_steps, 1)

    def _steps_per_epoch(self) -> int:
        if self._update_steps_per_epoch is None:
            raise RuntimeError("The schedules in epochs are known once training has started (`trainer.train()`).")
        return self._update_steps_per_epoch

    # ---- The weights (Algorithm 1) ----

    def loss_denominator(self, denominator: Any) -> Any:
        """`b`, or with `loss_normalization="weight_sum"` `b` times the global batch's mean weight, so the processes'
        averaged gradients are those of `sum_i v_i * l_i / sum_i v_i`."""
        if self.args.loss_normalization == "weight_sum":
            # A batch whose weights are all 0 has a zero loss either way; the floor only avoids 0 / 0.
            return denominator * self._batch_mean_weight.clamp_min(1e-12)
        return denominator

    def sample_weights(self, batch: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
        """The MentorNet's (or the closed form's) weights of the global batch, with burn-in and example dropout."""
        loss, usable = batch["loss"], batch["usable"]
        step, max_steps, epoch = self._training_progress()

        loss_diff = self._update_loss_moving_average(loss, usable, batch["label"], num_classes)
        mentornet_epoch = self._mentornet_epoch(epoch)

        if step < self.burn_in_steps:
            weights = torch.ones_like(loss)
        elif self._closed_form_weights is not None:
            sample_index = required_column(batch, "sample_index", "closed-form")
            weights = self._closed_form_step(loss, loss_diff, sample_index, usable)
        else:
            weights = self._curriculum_weights(loss, loss_diff, mentornet_epoch).to(loss.dtype)

        rate = self._dropout_rate(step, max_steps)
        if rate > 0:
            weights = weights * self._example_dropout_mask(loss.shape[0], rate)

        self._batch_mean_weight = weights.mean()
        if self._feature_buffer is not None:
            self._buffer_features(loss, loss_diff, mentornet_epoch)
        if self.is_world_process_zero():
            self._metrics["train"]["loss_moving_average"].append(self._loss_moving_average.clone())
        return weights

    def _curriculum_weights(self, loss: torch.Tensor, loss_diff: torch.Tensor, epoch: int) -> torch.Tensor:
        """The MentorNet's weights; its input values (a host sync on a GPU) are checked on the first batch only: the
        trainer's features are finite and in range by construction."""
        weights = self.curriculum(
            loss=loss, loss_diff=loss_diff, epoch=epoch, check_values=not self._curriculum_inputs_checked
        ).weights
        self._curriculum_inputs_checked = True
        return weights

    def _example_dropout_mask(self, size: int, rate: float) -> torch.Tensor:
        """Keep a uniformly random subset of the batch: `size * (1 - rate)` samples, stochastically rounded (the
        fraction decides the extra sample's odds), so the expected kept share is `1 - rate` at any batch size, and at
        least one, so a batch is never dropped whole (at batch 1 example dropout therefore never drops). Drawn on the
        training device's generator, seeded alike on every process, so every process draws the same mask; the
        kept count stays a tensor, so the draw makes no host sync."""
        generator = self._dropout_generator
        expected = size * (1.0 - rate)
        keep = torch.full((), math.floor(expected), device=generator.device)
        fraction = expected - math.floor(expected)
        if fraction > 0:  # no draw for a whole count: such batch sizes keep the released code's stream
            keep = keep + (torch.rand((), generator=generator, device=generator.device) < fraction)
        # The positions of a uniformly random permutation's `keep` smallest values are a uniform random subset.
        return torch.randperm(size, generator=generator, device=generator.device) < keep.clamp_min(1)

    def _update_loss_moving_average(
        self, loss: torch.Tensor, usable: torch.Tensor, labels: torch.Tensor, num_classes: int
    ) -> torch.Tensor:
        """Move the average of the p-th loss percentile of the samples that train (one average per class with
        `loss_percentile_per_class`, of the classes in the batch) and return each sample's `loss_diff`, its loss
        minus the average it is compared with. A batch with no sample that trains leaves the average as it is."""
        p = self.args.loss_p_percentile
        if not self.args.loss_percentile_per_class:
            self._move_loss_average(torch.nanquantile(loss.masked_fill(~usable, math.nan), p), usable.any())
            return self._loss_diff(loss, usable, labels, num_classes)
        if self._loss_average_sum.dim() == 0:
            self._loss_average_sum = torch.zeros(num_classes, device=loss.device)
            self._loss_average_steps = torch.zeros(num_classes, dtype=torch.long, device=loss.device)
        # Every class's percentile at once (no per-class loop or host sync in the step; WebVision has 1,000 classes):
        # sort by (label, loss) and interpolate inside each class's segment as `torch.quantile` does. Samples that do
        # not train go to an extra class past the last.
        labels = labels.masked_fill(~usable, num_classes)
        order = loss.argsort()
        order = order[labels[order].argsort(stable=True)]
        sorted_loss = loss[order]
        counts = torch.bincount(labels, minlength=num_classes + 1)[:num_classes]
        position = (counts.cumsum(0) - counts) + p * (counts - 1).clamp_min(0)
        lower, upper = position.floor().long(), position.ceil().long()
        last = loss.shape[0] - 1  # classes absent from the batch index past the end; they are not moved
        below, above = sorted_loss[lower.clamp(max=last)], sorted_loss[upper.clamp(max=last)]
        self._move_loss_average(below + (above - below) * (position - lower), counts > 0)
        return self._loss_diff(loss, usable, labels, num_classes)

    def _loss_diff(
        self, loss: torch.Tensor, usable: torch.Tensor, labels: torch.Tensor, num_classes: int
    ) -> torch.Tensor:
        """Each sample's loss minus the moving average it is compared with (its class's with
        `loss_percentile_per_class`), the average left as it is."""
        if not self.args.loss_percentile_per_class:
            return loss - self._loss_moving_average
        labels = labels.masked_fill(~usable, num_classes)
        return loss - self._loss_moving_average[labels.clamp_max(num_classes - 1)]

    def _move_loss_average(self, percentile: torch.Tensor, moved: torch.Tensor) -> None:
        """One step of the exponential moving average where `moved`. With `loss_moving_average_bias_correction` the
        average is divided by `1 - decay^t` after t steps: the weighted mean of the percentiles seen so far, right
        from the first step; once `decay^t` underflows (t >= 338 at 0.95, float32) it is the uncorrected average."""
        decay = self.args.loss_moving_average_decay
        self._loss_average_sum = torch.where(
            moved, decay * self._loss_average_sum + (1.0 - decay) * percentile, self._loss_average_sum
        )
        self._loss_average_steps = self._loss_average_steps + moved.long()
        self._set_loss_moving_average()

    def _set_loss_moving_average(self) -> None:
        """The average the features use, from the exponential sum and its number of steps."""
        self._loss_moving_average = self._loss_average_sum
        if self.args.loss_moving_average_bias_correction:
            decay = self.args.loss_moving_average_decay
            weight = 1.0 - torch.full_like(self._loss_average_sum, decay) ** self._loss_average_steps
            # An average never moved has sum 0 and weight 0: it stays 0.
            self._loss_moving_average = self._loss_average_sum / weight.clamp_min(1e-30)

    def _mentornet_epoch(self, epoch: int) -> int:
        """The epoch feature the MentorNet is given at training progress `epoch` (clamped to the burn-in epoch
        with `fixed_epoch_after_burn_in`)."""
        if self.args.fixed_epoch_after_burn_in:
            return min(epoch, math.floor(100 * self.burn_in_steps / max(self.state.max_steps, 1) + 1e-6))
        return epoch

    def _closed_form_step(
        self, loss: torch.Tensor, loss_diff: torch.Tensor, sample_index: torch.Tensor, usable: torch.Tensor
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
        stored = self._closed_form_weights[sample_index]
        weights = (stored - alpha * (current + lambda2 * stored - (lambda1 + lambda2))).clamp(0.0, 1.0)
        self._closed_form_weights[sample_index] = torch.where(usable, weights, stored)  # no step without a loss
        return weights

    def _dropout_rate(self, step: int, max_steps: int) -> float:
        """The example-dropout rate at `step`, the schedule's lengths read in `example_dropout_schedule_unit`."""
        unit = self.args.example_dropout_schedule_unit
        if unit == "percent":
            position = 100.0 * step / max_steps
        else:
            position = step if unit == "steps" else step / self._steps_per_epoch()
        for end, rate in self._dropout_boundaries:
            if position < end:
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

    def _metric_logs(self, metrics: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        moving_average = metrics.pop("loss_moving_average", None)
        logs = super()._metric_logs(metrics)
        if moving_average:  # its mean over the classes when per class
            logs["mentornet/loss_moving_average"] = moving_average[-1].mean().item()
        return logs

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
        args = self.args
        step, _, progress = self._training_progress()
        # Records carry the epoch feature the MentorNet will be given from now on, so that what it learns is
        # what it is asked (with `fixed_epoch_after_burn_in`, the burn-in epoch, not the current one).
        epoch = self._mentornet_epoch(progress)
        learned, fit = self.curriculum, {}
        if self.accelerator.is_main_process:
            if self.curriculum_update_dataset is not None:
                predictions = self._student_predictions(self.curriculum_update_dataset)
                verified = predictions["clean_label"] >= 0  # an unverified row (-1) says nothing about its label
                records = {
                    "epoch": np.full(int(verified.sum()), epoch, dtype=np.int64),
                    "label": predictions["label"][verified],
                    "clean_label": predictions["clean_label"][verified],
                    "loss": predictions["loss"][verified],
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

    # ---- Checkpoints ----

    def _run_settings(self) -> dict[str, Any]:
        # The curriculum the run started from, by name and content: resuming with another one is a changed setting.
        return {**super()._run_settings(), "initial_curriculum": self._initial_curriculum}

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            **super()._checkpoint_state(),
            "loss_average_sum": self._loss_average_sum,
            "loss_average_steps": self._loss_average_steps,
            "dropout_generator": self._dropout_generator.get_state(),
            "next_curriculum_update": self._next_curriculum_update,
            "feature_buffer": self._feature_buffer,
        }

    def _per_sample_state(self) -> dict[str, torch.Tensor]:
        state = super()._per_sample_state()
        if self._closed_form_weights is not None:
            state["closed_form_weights"] = self._closed_form_weights
        return state

    def _load_checkpoint_state(
        self, state: dict[str, Any], per_sample: dict[str, torch.Tensor], checkpoint: str
    ) -> None:
        super()._load_checkpoint_state(state, per_sample, checkpoint)
        self._loss_average_sum = state["loss_average_sum"]
        self._loss_average_steps = state["loss_average_steps"]
        self._set_loss_moving_average()
        self._dropout_generator.set_state(state["dropout_generator"].cpu())
        self._next_curriculum_update = state["next_curriculum_update"]
        self._feature_buffer = state["feature_buffer"]
        if self._closed_form_weights is not None:
            self._closed_form_weights = per_sample["closed_form_weights"]

    def _save_checkpoint_files(self, checkpoint: str) -> None:
        super()._save_checkpoint_files(checkpoint)
        if self.curriculum is not None:
            self.curriculum.save_pretrained(os.path.join(checkpoint, MENTORNET_DIR))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if self.curriculum is None:
            return
        mentornet_dir = os.path.join(resume_from_checkpoint, MENTORNET_DIR)
        try:
            self.curriculum = MentorNetModel.from_pretrained(mentornet_dir).to(self.args.device).eval()
        except Exception as error:  # safetensors, torch and transformers errors alike
            raise damaged_checkpoint_error(resume_from_checkpoint, mentornet_dir, error) from error

    def _save_hub_files(self, output_dir: str) -> None:
        super()._save_hub_files(output_dir)
        if self.curriculum is not None:
            save_curriculum(self.curriculum, os.path.join(output_dir, MENTORNET_DIR), overwrite=True)

    def _model_card_lines(self) -> list[str]:
        args = self.args
        config = self.curriculum.config if self.curriculum is not None else None
        loading = (
            [
                "",
                f"The curriculum the student was trained with is in `{MENTORNET_DIR}/`: "
                f'`MentorNetModel.from_pretrained("<this repo>", subfolder="{MENTORNET_DIR}")` '
                "(`from hf_mentornet import MentorNetModel`).",
            ]
            if config is not None
            else []
        )
        return [
            *super()._model_card_lines(),
            "",
            "## Curriculum (MentorNet)",
            "",
            "Sample weights from a curriculum (Jiang et al., ICML 2018, Algorithm 1).",
            *loading,
            "",
            f"- curriculum type: {args.curriculum_type}",
            f"- curriculum: {config.curriculum_name if config is not None else 'closed form (Eq. 7)'}",
            f"- loss percentile: {args.loss_p_percentile}{' per label class' if args.loss_percentile_per_class else ''}"
            f", moving-average decay: {args.loss_moving_average_decay}"
            f"{' (bias-corrected)' if args.loss_moving_average_bias_correction else ''}",
            f"- burn-in: {self._burn_in_text()}, fixed epoch after burn-in: {args.fixed_epoch_after_burn_in}",
            f"- example dropout schedule: {args.example_dropout_schedule} "
            f"((rate, {args.example_dropout_schedule_unit}) pairs)",
            f"- curriculum updates at: {list(args.curriculum_update_at)}",
        ]

    def _burn_in_text(self) -> str:
        args = self.args
        if args.burn_in_steps is not None:
            return f"{args.burn_in_steps} steps"
        if args.burn_in_epochs is not None:
            return f"{args.burn_in_epochs:g} epochs"
        return f"{args.burn_in_fraction:.0%} of training"


def curriculum_fingerprint(curriculum: MentorNetModel) -> str:
    """The curriculum's name and a digest of its parameters: two curricula compare equal when they weight alike."""
    digest = hashlib.sha256()
    for name, tensor in sorted(curriculum.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{curriculum.config.curriculum_name or 'unnamed'} ({digest.hexdigest()[:12]})"


def _num_samples(train_dataset: Any) -> int:
    """Size of the per-sample weight table of the closed-form branch: the largest `sample_index` + 1."""
    if isinstance(train_dataset, datasets.Dataset) and "sample_index" in train_dataset.column_names:
        return index_size(check_training_index(train_dataset, "`curriculum_type`='closed-form'"))
    if isinstance(train_dataset, torch.utils.data.IterableDataset | datasets.IterableDataset) or train_dataset is None:
        raise ValueError(
            "`curriculum_type`='closed-form' keeps one weight per training sample and needs a sized `train_dataset` "
            "(a datasets.Dataset with a `sample_index` column)."
        )
    return len(train_dataset)
