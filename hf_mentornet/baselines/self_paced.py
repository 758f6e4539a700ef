"""Kumar et al.'s self-paced learning (2010), the MentorNet paper's self-paced baseline (Appendix E.2): weight 1 for
the samples whose loss is below a threshold that grows every epoch, 0 for the others."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..weighted_trainer import WeightedLossArguments, WeightedLossTrainer

__all__ = ["SelfPacedConfig", "SelfPacedTrainer", "self_paced_threshold"]


def self_paced_threshold(losses: torch.Tensor, percentile: float, growth: float, epoch: int) -> torch.Tensor:
    r"""The self-paced threshold `lambda_e = lambda_0 * growth^e` (Kumar et al., 2010, as in the MentorNet paper's
    Appendix E.2: lambda grows by 20% per epoch, `growth=1.2`, compounding).

    `lambda_0` is the `percentile` of the batch's losses, measured on every batch rather than fixed at the first
    one: a random student's first losses are all close to `log m`, so a number frozen there would select every
    sample after a few steps; measured per batch it keeps Jiang et al. (2014)'s meaning, "the easiest
    `percentile` of the samples" at epoch 0, and admits more samples as `lambda` grows. The weight of a sample is
    `1[loss <= lambda_e]`.

    Args:
        losses (`torch.Tensor` of shape `(batch_size,)`): the batch's per-sample losses, NaN for a sample left
            out (one that does not train).
        percentile (`float`): in (0, 1], e.g. 0.5 (the paper tunes the 50th, 60th and 75th percentile).
        growth (`float`): the factor per epoch, >= 1.
        epoch (`int`): the number of completed epochs.
    """
    return torch.nanquantile(losses.float(), percentile) * growth**epoch


@dataclass
class SelfPacedConfig(WeightedLossArguments):
    r"""Arguments of [`SelfPacedTrainer`]."""

    self_paced_percentile: float = field(
        default=0.5,
        metadata={
            "help": "The batch-loss percentile (fraction in (0, 1]) that sets lambda at epoch 0 (the paper tunes 0.5, "
            "0.6, 0.75)."
        },
    )
    self_paced_growth: float = field(
        default=1.2,
        metadata={
            "help": "lambda's factor per completed epoch, >= 1 (the paper: +20% per epoch, compounding: "
            "lambda_e = lambda_0 * 1.2^e)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.self_paced_percentile <= 1.0:
            raise ValueError(
                f"`self_paced_percentile`={self.self_paced_percentile!r} must be a fraction in (0, 1], e.g. 0.5."
            )
        if self.self_paced_growth < 1.0:
            raise ValueError(f"`self_paced_growth`={self.self_paced_growth!r} must be >= 1 (the paper: 1.2).")


class SelfPacedTrainer(WeightedLossTrainer):
    """Self-paced learning (Kumar et al., 2010): weight `1[loss <= lambda_e]` with the growing threshold of
    [`self_paced_threshold`], on the global batch."""

    args_class = SelfPacedConfig

    def sample_weights(self, batch: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
        loss = batch["loss"]
        threshold = self_paced_threshold(
            loss.masked_fill(~batch["usable"], math.nan),
            self.args.self_paced_percentile,
            self.args.self_paced_growth,
            math.floor(self.state.epoch or 0),
        )
        return (loss <= threshold).to(loss.dtype)
