"""The MentorNet's `loss_diff` feature as a trainer serves it (Jiang et al., ICML 2018, Algorithm 1 step 10): each
sample's loss minus an exponential moving average of the p-th percentile of the batch losses. One home for the
average, used by [`MentorNetTrainer`] (the served feature) and by every trainer's student records, so that a
curriculum learned from records sees the features it is later served."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["RECORD_LOSS_PERCENTILES", "LossPercentileAverages", "loss_diff_column"]

# The percentiles the released code learns its DD at (`learn_from_records`' defaults), as fractions.
RECORD_LOSS_PERCENTILES = (0.4, 0.5, 0.6, 0.75, 0.8, 0.9)


def loss_diff_column(percentile: float) -> str:
    """The records' column of `loss_diff` against the moving `percentile` (a fraction): `loss_diff_p75` for 0.75."""
    return f"loss_diff_p{round(100 * percentile):d}"


def moving_average_step(
    average_sum: torch.Tensor, steps: torch.Tensor, value: torch.Tensor, moved: torch.Tensor, decay: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the exponential moving average `sum <- decay * sum + (1 - decay) * value` where `moved`; returns
    the new sum and the new number of steps taken."""
    average_sum = torch.where(moved, decay * average_sum + (1.0 - decay) * value, average_sum)
    return average_sum, steps + moved.long()


def corrected_average(
    average_sum: torch.Tensor, steps: torch.Tensor, decay: float, bias_correction: bool
) -> torch.Tensor:
    """The average from its exponential sum: divided by `1 - decay^t` after t steps with `bias_correction` (the
    weighted mean of the values seen so far, right from the first step; once `decay^t` underflows, t >= 338 at 0.95
    in float32, the uncorrected sum). An average never moved has sum 0 and weight 0: it stays 0."""
    if not bias_correction:
        return average_sum
    weight = 1.0 - torch.full_like(average_sum, decay) ** steps
    return average_sum / weight.clamp_min(1e-30)


class LossPercentileAverages:
    """Moving averages of several percentiles of the batch losses, on the training device, with no host sync.

    Args:
        percentiles (`Sequence[float]`): fractions in (0, 1], e.g. `(0.5, 0.75)`.
        decay (`float`): the moving average's decay (the paper: 0.95).
        bias_correction (`bool`): see [`corrected_average`].
        device (`torch.device`): where the averages live.
    """

    def __init__(
        self, percentiles: Sequence[float], decay: float, bias_correction: bool, device: torch.device | str
    ) -> None:
        self.percentiles = torch.tensor([float(p) for p in percentiles], device=device)
        self.decay = decay
        self.bias_correction = bias_correction
        self.average_sum = torch.zeros(len(percentiles), device=device)
        self.steps = torch.zeros((), dtype=torch.long, device=device)

    def update(self, loss: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
        """Move every average with the percentiles of the losses of the samples that train (a batch with none leaves
        them as they are) and return the averages, `(len(percentiles),)`."""
        percentile = torch.nanquantile(loss.masked_fill(~usable, math.nan), self.percentiles)
        self.average_sum, self.steps = moving_average_step(
            self.average_sum, self.steps, percentile, usable.any(), self.decay
        )
        return self.averages()

    def averages(self) -> torch.Tensor:
        return corrected_average(self.average_sum, self.steps, self.decay, self.bias_correction)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"average_sum": self.average_sum, "steps": self.steps}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.average_sum = state["average_sum"].to(self.average_sum.device)
        self.steps = state["steps"].to(self.steps.device)
