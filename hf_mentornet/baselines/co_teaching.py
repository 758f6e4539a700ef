"""Co-teaching (Han et al., 2018), a peer method beyond the MentorNet paper's baselines: two students, each training on
the small-loss samples its peer selects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..students import student_logits
from ..weighted_trainer import WeightedLossArguments, WeightedLossTrainer

__all__ = ["CoTeachingConfig", "CoTeachingPair", "CoTeachingTrainer", "co_teaching_forget_rate", "co_teaching_weights"]


def co_teaching_forget_rate(epoch: float, forget_rate: float, ramp_epochs: float) -> float:
    r"""Co-teaching's schedule (Han et al., 2018): the fraction of each batch dropped at `epoch` (completed
    epochs), `min(epoch / T_k, 1) * tau`, ramping linearly from 0 to `tau = forget_rate` (the noise rate estimate)
    over the first `T_k = ramp_epochs` epochs."""
    if ramp_epochs <= 0:
        return forget_rate
    return forget_rate * min(math.floor(epoch) / ramp_epochs, 1.0)


@torch.no_grad()
def co_teaching_weights(losses: torch.Tensor, forget_rate: float) -> torch.Tensor:
    r"""Co-teaching's cross update (Han et al., 2018): each network keeps the `1 - forget_rate` fraction of the
    batch with its smallest losses, and its PEER trains on them.

    Args:
        losses (`torch.Tensor` of shape `(2, batch_size)`): the per-sample losses of the two networks.
        forget_rate (`float`): the fraction to drop, in [0, 1).

    Returns:
        `torch.Tensor` of shape `(2, batch_size)`, 0/1: row 0 the samples network 1 selected (network 0 trains on
        them), row 1 those network 0 selected. Each row keeps `max(1, int((1 - forget_rate) * batch_size))` samples
        (Han et al. round down).
    """
    batch_size = losses.shape[1]
    num_keep = max(1, int((1.0 - forget_rate) * batch_size))
    selected = torch.zeros_like(losses)
    selected.scatter_(1, losses.argsort(dim=1)[:, :num_keep], 1.0)
    return selected.flip(0)


class CoTeachingPair(nn.Module):
    r"""The two networks of Co-teaching (Han et al., 2018), trained together by [`CoTeachingTrainer`].

    In training mode `forward` returns both networks' logits stacked, shape `(2, batch_size, num_classes)`; the
    trainer then lets each network pick the small-loss samples its peer trains on ([`co_teaching_weights`]). In
    evaluation mode it returns the first network's logits, the reported student.

    Args:
        student (`nn.Module`): the first network (the one evaluated).
        peer (`nn.Module`): the second network: same architecture, a different random initialisation.
    """

    def __init__(self, student: nn.Module, peer: nn.Module) -> None:
        super().__init__()
        first, second = next(student.parameters(), None), next(peer.parameters(), None)
        if first is None or second is None or first.shape != second.shape:
            raise ValueError("`student` and `peer` must be two networks of the same architecture, with parameters.")
        if torch.equal(first, second):
            raise ValueError(
                "`student` and `peer` start from identical weights, so co-teaching would train two copies of one "
                "network; build them one after the other without re-seeding in between (a `student_factory` that "
                "calls torch.manual_seed gives identical networks)."
            )
        self.student = student
        self.peer = peer

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = student_logits(self.student, pixel_values)
        if not self.training:
            return logits
        return torch.stack([logits, student_logits(self.peer, pixel_values)])


@dataclass
class CoTeachingConfig(WeightedLossArguments):
    r"""Arguments of [`CoTeachingTrainer`]. Co-teaching averages its loss over the samples it keeps, so the weight
    decay is not scaled by the mean weight (`scale_weight_decay_by_mean_weight` must stay False)."""

    co_teaching_forget_rate: float | None = field(
        default=None,
        metadata={
            "help": "tau in [0, 1), the fraction of each batch finally dropped: the noise-rate estimate (Han et al. "
            "assume it known; `hf_mentornet.methods` sets it to the training split's corrupted fraction). The "
            "trainer needs it."
        },
    )
    co_teaching_ramp_epochs: float = field(
        default=10.0,
        metadata={"help": "T_k, the epochs over which the forget rate ramps linearly from 0 to tau (Han et al.: 10)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.co_teaching_forget_rate is not None and not 0.0 <= self.co_teaching_forget_rate < 1.0:
            raise ValueError(
                f"`co_teaching_forget_rate`={self.co_teaching_forget_rate!r} must be in [0, 1): the estimated "
                "fraction of corrupted labels, e.g. 0.4."
            )
        if self.co_teaching_ramp_epochs < 0:
            raise ValueError(
                f"`co_teaching_ramp_epochs`={self.co_teaching_ramp_epochs!r} must be >= 0 (Han et al.: 10)."
            )
        if self.scale_weight_decay_by_mean_weight:
            raise ValueError(
                "`scale_weight_decay_by_mean_weight`=True does not apply to co-teaching, whose loss is a mean over "
                "the samples it keeps (Han et al.); set it to False."
            )


class CoTeachingTrainer(WeightedLossTrainer):
    """Co-teaching (Han et al., 2018): the model is a [`CoTeachingPair`]; each network's loss is its mean loss over
    the samples its peer selected (on this process's batch). The metrics, records and label-issue ranking describe
    the first network, the one evaluated and saved as the student: its weights are the peer's selection."""

    args_class = CoTeachingConfig

    def __init__(
        self, model: CoTeachingPair | None = None, args: CoTeachingConfig | None = None, **kwargs: Any
    ) -> None:
        if not isinstance(model, CoTeachingPair):
            raise TypeError(
                f"`model` is a {type(model).__name__}; CoTeachingTrainer trains two networks: pass "
                "`CoTeachingPair(student_factory(), student_factory())`."
            )
        if args is None or args.co_teaching_forget_rate is None:
            raise ValueError(
                "`co_teaching_forget_rate` is not set: co-teaching drops that fraction of each batch, the estimated "
                "share of corrupted labels; set it in CoTeachingConfig, e.g. 0.4."
            )
        super().__init__(model=model, args=args, **kwargs)

    def weighted_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: dict[str, torch.Tensor], denominator: Any
    ) -> torch.Tensor:
        """Both networks' mean loss over the samples their peer selected; `logits` has shape `(2, b, m)`."""
        losses, usable = self._usable_losses(logits.reshape(-1, logits.shape[-1]), labels.repeat(2))
        # A sample labelled -100 or with a non-finite loss (either network) is never selected and never trains.
        usable = usable.view(2, -1).all(0)
        losses = losses.view(2, -1).masked_fill(~usable, 0.0)
        forget_rate = co_teaching_forget_rate(
            self.state.epoch or 0.0, self.args.co_teaching_forget_rate, self.args.co_teaching_ramp_epochs
        )
        weights = co_teaching_weights(losses.detach().masked_fill(~usable, math.inf), forget_rate) * usable
        # Han et al. average over the kept samples: scale the usual 1/b by b / (number kept).
        kept_fraction = weights[0].sum().clamp_min(1.0) / labels.shape[0]
        batch = {"loss": losses[0].detach(), "usable": usable, "label": labels, **targets}
        self._observe_weights(batch, weights[0])
        return (weights * losses).sum() / (denominator * kept_fraction)
