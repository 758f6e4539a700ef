"""MentorMix (Jiang, Huang, Liu and Yang, "Beyond Synthetic Noise: Deep Learning on Controlled Noisy Labels", ICML
2020): mixup guided by the MentorNet weights, the MentorNet family's method for real and synthetic label noise."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .baselines import CoTeachingPair
from .trainer import MentorNetTrainer
from .training_args import MentorNetTrainingArguments

__all__ = ["MentorMixConfig", "MentorMixTrainer", "mentormix_batch"]


@dataclass
class MentorMixConfig(MentorNetTrainingArguments):
    r"""
    Arguments of [`MentorMixTrainer`]: those of [`MentorNetTrainingArguments`] (the curriculum and its settings:
    `curriculum`, `loss_p_percentile`, burn-in, example dropout, ...) and MentorMix's own.
    """

    mentormix_alpha: float = field(
        default=2.0,
        metadata={
            "help": "The mixup coefficient's Beta(alpha, alpha) parameter: a small alpha mixes little (alpha -> 0: each "
            "sample is itself or its partner), a large one mixes near half and half. The authors tune it in 0.4-32: 8 "
            "in their released CIFAR-100 example (40% noise), 2 / 8 / 8 / 4 in their CIFAR-10 commands at 20 / 40 / 60 "
            "/ 80%. The default 2 ended above 8 in every cell of this project's noisy CIFAR-10 benchmark with "
            "augmentation and weight decay (40% noise, where plain training memorises: 0.604 / 0.577 against 0.532 / "
            "0.532, seeds 0 / 1); where plain training barely memorises a weaker mix (0.5) did better still. Every "
            "cell is in bench/RESULTS.md (MentorMix)."
        },
    )
    mentormix_second_weighting: bool = field(
        default=False,
        metadata={
            "help": "Weight the mixed samples' losses with the curriculum again (MentorNet on the mixed losses, against "
            "the same moving percentile), as the authors found helpful at high noise (their released CIFAR-10 "
            "commands turn it on at 60% and 80%). Off: each mixed sample keeps the weight its own sample got on the "
            "unmixed batch. On this project's benchmark at 80% noise it ended lower (0.354 against 0.372)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.mentormix_alpha, int | float) and 0.0 < self.mentormix_alpha < math.inf):
            raise ValueError(
                f"`mentormix_alpha`={self.mentormix_alpha!r} must be a positive number (the Beta(alpha, alpha) "
                "parameter), e.g. 8 as the authors on CIFAR-100, or 0.5 to mix little."
            )
        if self.mentormix_second_weighting and self.curriculum_type != "mentornet":
            raise ValueError(
                f"`mentormix_second_weighting`=True weights the mixed losses with the MentorNet, but "
                f"`curriculum_type`={self.curriculum_type!r} has none (its weights are per training sample, not per "
                "loss): use curriculum_type='mentornet', or leave the second weighting off."
            )


@torch.no_grad()
def mentormix_batch(
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    usable: torch.Tensor,
    mixing: torch.Tensor,
    uniform: torch.Tensor,
    num_classes: int,
    label_smoothing: float = 0.0,
) -> dict[str, torch.Tensor]:
    r"""
    MentorMix's mixup of one batch (Jiang et al., 2020): each sample `i` gets a partner `j` drawn from the batch with
    probability `softmax(v)` (so samples that look clean are drawn more), and `lambda = max(m, 1 - m)` of its
    mixing draw `m`. A sample with `v_i >= 0.5` keeps the larger share `lambda`, one with `v_i < 0.5` only
    `1 - lambda`, so its likely wrong label counts little: `x~_i = s_i x_i + (1 - s_i) x_j`, and the one-hot (or
    smoothed) labels alike. No gradient flows through the mix.

    Args:
        pixel_values (`torch.Tensor` of shape `(b, ...)`): the batch's inputs.
        labels (`torch.Tensor` of shape `(b,)`): class indices (any value where `usable` is False).
        weights (`torch.Tensor` of shape `(b,)`): the MentorNet weights `v`.
        usable (`torch.Tensor` of shape `(b,)`): the samples that train; the others are never drawn as partners.
        mixing (`torch.Tensor` of shape `(b,)`): draws `m ~ Beta(alpha, alpha)`.
        uniform (`torch.Tensor` of shape `(b,)`): uniform draws in [0, 1) that pick the partners (inverse CDF).
        num_classes (`int`): the number of classes.
        label_smoothing (`float`, *optional*, defaults to 0): smoothing of the one-hot labels, as the trainer's.

    Returns:
        `dict` with `pixel_values` (mixed), `targets` (mixed label distributions, `(b, num_classes)`), `partner`
        (the partners' indices), `share` (each sample's own share `s_i`) and `label` (the label with the larger
        share).
    """
    scores = weights.float().masked_fill(~usable, -math.inf)
    # A batch where no sample trains draws partners uniformly; none of its losses counts.
    probabilities = torch.softmax(torch.where(usable.any(), scores, torch.zeros_like(scores)), dim=0)
    cdf = probabilities.cumsum(0)
    partner = torch.searchsorted(cdf, (uniform.to(cdf) * cdf[-1]).unsqueeze(-1)).squeeze(-1).clamp_max(len(cdf) - 1)
    larger = torch.maximum(mixing, 1.0 - mixing).to(pixel_values.dtype)
    share = torch.where(weights >= 0.5, larger, 1.0 - larger)
    shape = (-1,) + (1,) * (pixel_values.dim() - 1)
    mixed = share.view(shape) * pixel_values + (1.0 - share.view(shape)) * pixel_values[partner]
    safe_labels = labels.masked_fill(~usable, 0)
    one_hot = F.one_hot(safe_labels, num_classes).float() * (1.0 - label_smoothing) + label_smoothing / num_classes
    share = share.float()
    targets = share[:, None] * one_hot + (1.0 - share[:, None]) * one_hot[partner]
    label = torch.where(share >= 0.5, safe_labels, safe_labels[partner])
    return {"pixel_values": mixed, "targets": targets, "partner": partner, "share": share, "label": label}


class MentorMixTrainer(MentorNetTrainer):
    r"""
    Train a classifier on noisy labels with MentorMix (Jiang, Huang, Liu and Yang, ICML 2020): four steps per batch.

    1. **Weight**: the MentorNet weights `v` of the batch's samples, exactly as [`MentorNetTrainer`] gives them (any
       curriculum, burn-in, example dropout, decided on the global batch), from the losses of a forward pass without
       gradient.
    2. **Sample**: every sample draws a partner from its process's batch with probability `softmax(v)`.
    3. **Mixup** ([`mentormix_batch`]): `lambda = max(m, 1 - m)`, `m ~ Beta(alpha, alpha)` per sample; a sample with
       `v >= 0.5` keeps the share `lambda`, one with `v < 0.5` only `1 - lambda`; inputs and one-hot labels mixed
       alike.
    4. **Weight again** (`mentormix_second_weighting`): the MentorNet's weights of the mixed samples' losses (against
       the same moving percentile, the global batch again). Off, each mixed sample keeps its own sample's `v`.

    The loss is `sum_i w_i * l~_i / b` (or over the weight sum, `loss_normalization`), `l~_i` the cross-entropy of
    the mixed sample against its mixed label. The metrics, the label-issue ranking, the records and the weight-decay
    scale read the first weights `v`, which belong to the training samples themselves. The partner draw stays within
    each process's batch, as mixup in data-parallel training does; the weights are the global batch's. The mixing
    and partner draws come from one generator seeded by `args.seed`, the same stream on every process (each takes its
    part), saved in checkpoints. The extra forward pass costs about a third of a training step.

    Args:
        model: the student (a transformers image classifier or any `nn.Module` on `pixel_values`).
        args ([`MentorMixConfig`]): training, curriculum and mixup settings.
        **kwargs: the other arguments of [`MentorNetTrainer`] (`curriculum`, `curriculum_update_dataset`, ...).
    """

    args_class = MentorMixConfig

    def __init__(self, model: nn.Module | None = None, args: MentorMixConfig | None = None, **kwargs: Any) -> None:
        if isinstance(model, CoTeachingPair):
            raise ValueError(
                "`model` is a CoTeachingPair: co-teaching trains two students by their peer's selection, MentorMix one "
                "student by mixup; use CoTeachingTrainer for co-teaching, or pass one student to MentorMixTrainer."
            )
        super().__init__(model=model, args=args, **kwargs)
        self._mixing_generator = np.random.default_rng(self.args.seed)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        inputs, labels, targets = self._training_batch(inputs)
        with torch.no_grad():  # step 1: the weights, from the unmixed batch
            logits = self._student_logits(model, inputs)
            losses, usable = self._usable_losses(logits, labels)
        num_classes = logits.shape[-1]
        weights = self._batch_weights(losses, usable, labels, targets, num_classes)
        mixing, uniform = self._mixing_draws(labels.shape[0])
        batch = mentormix_batch(
            inputs["pixel_values"],
            labels,
            weights,
            usable,
            mixing.to(labels.device, non_blocking=True),
            uniform.to(labels.device, non_blocking=True),
            num_classes,
            self.args.label_smoothing_factor,
        )
        mixed_logits = self._student_logits(model, {**inputs, "pixel_values": batch["pixel_values"]})
        mixed_losses = -(batch["targets"] * torch.log_softmax(mixed_logits.float(), dim=-1)).sum(-1)
        trains = usable & torch.isfinite(mixed_losses.detach())
        mixed_losses = mixed_losses.masked_fill(~trains, 0.0)
        if self.args.mentormix_second_weighting:
            weights = self._mixed_loss_weights(mixed_losses.detach(), trains, batch["label"], num_classes)
        loss = (weights * mixed_losses).sum() / self.loss_denominator(self._denominator(labels, num_items_in_batch))
        return (loss, mixed_logits) if return_outputs else loss

    def _mixing_draws(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's mixing draws `m ~ Beta(alpha, alpha)` and partner-picking uniforms. Every process draws the
        global batch's from the same stream and takes its part, so the stream is one at any number of processes and
        a checkpoint saves it once."""
        alpha, num_processes = self.args.mentormix_alpha, self.accelerator.num_processes
        mixing = self._mixing_generator.beta(alpha, alpha, size=size * num_processes)
        uniform = self._mixing_generator.random(size * num_processes)
        part = slice(self.accelerator.process_index * size, (self.accelerator.process_index + 1) * size)
        return torch.as_tensor(mixing[part], dtype=torch.float32), torch.as_tensor(uniform[part], dtype=torch.float32)

    def _mixed_loss_weights(
        self, losses: torch.Tensor, usable: torch.Tensor, labels: torch.Tensor, num_classes: int
    ) -> torch.Tensor:
        """Step 4: the MentorNet's weights of the mixed losses, on the global batch, against the moving percentile
        the first weighting moved (of the class of the larger share, per class); 1 during burn-in, then ramped in as
        the first weighting's (`curriculum_ramp_fraction`). The loss is normalised by their sum with
        `loss_normalization="weight_sum"`."""
        batch = {"loss": losses, "usable": usable, "label": labels}
        if self.accelerator.num_processes > 1:
            batch = self.accelerator.gather(batch)
        step, max_steps, epoch = self._training_progress()
        with torch.no_grad():
            if step < self.burn_in_steps:
                weights = torch.ones_like(batch["loss"])
            else:
                loss_diff = self._loss_diff(batch["loss"], batch["usable"], batch["label"], num_classes)
                epoch = self._mentornet_epoch(epoch)
                weights = self._ramp_in(self._curriculum_weights(batch["loss"], loss_diff, epoch), step, max_steps)
            weights = weights.to(losses.dtype).masked_fill(~batch["usable"], 0.0)
        self._batch_mean_weight = weights.mean()
        return self._local_part(weights, losses.shape[0])

    # ---- Checkpoints ----

    def _checkpoint_state(self) -> dict[str, Any]:
        # As JSON text: numpy's generator state holds 128-bit integers, and checkpoints load with weights_only=True.
        return {
            **super()._checkpoint_state(),
            "mixing_generator": json.dumps(self._mixing_generator.bit_generator.state),
        }

    def _load_checkpoint_state(
        self, state: dict[str, Any], per_sample: dict[str, torch.Tensor], checkpoint: str
    ) -> None:
        super()._load_checkpoint_state(state, per_sample, checkpoint)
        self._mixing_generator.bit_generator.state = json.loads(state["mixing_generator"])

    def _model_card_lines(self) -> list[str]:
        args = self.args
        return [
            *super()._model_card_lines(),
            f"- MentorMix (Jiang et al., ICML 2020): mixup alpha {args.mentormix_alpha:g}, second weighting "
            f"{'on' if args.mentormix_second_weighting else 'off'}",
        ]
