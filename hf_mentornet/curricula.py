"""The predefined curricula of the paper, as vectorised functions of the MentorNet features, and the feature grid
they are learned on.

Every curriculum takes the features of a batch of samples and returns their weights in [0, 1]:

- `loss`, `loss_diff`: float tensors of shape `(n, T)`, the loss history (oldest first, the last column is the
  current step); `loss_diff` is the loss minus the moving average of the p-th percentile of mini-batch losses;
- `epoch`: integer tensor `(n,)`, training progress in 0..99;
- `label`: integer tensor `(n,)`, the label-embedding index (0 unless a curriculum distinguishes labels).

Call them through [`curriculum_weights`], which also accepts 1-D `loss` / `loss_diff`.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["CURRICULA", "curriculum_weights", "feature_grid", "validate_curriculum_name"]


def closed_form(
    loss: torch.Tensor,
    loss_diff: torch.Tensor,
    epoch: torch.Tensor,
    label: torch.Tensor,
    lambda1: float = 0.0,
    lambda2: float = 1.0,
    relative: bool = True,
) -> torch.Tensor:
    """The minimiser of the paper's G (Eq. 5), Eq. 7: `clip(1 - (l - lambda1) / lambda2, 0, 1)`, or
    `1[l <= lambda1]` when `lambda2 == 0`.

    With `relative=True` (default) `l` is `loss_diff`, i.e. `lambda1` is measured from the loss moving average
    `l_pt`, as the paper's MentorNet PD ties its threshold to the 75th-percentile moving average (App. E.3); with
    `relative=False` it is the raw loss, as Eq. 7 is written.
    """
    x = (loss_diff if relative else loss)[:, -1]
    if lambda2 == 0:
        return (x <= lambda1).to(loss.dtype)
    return (1.0 - (x - lambda1) / lambda2).clamp(0.0, 1.0)


def baseline(loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Uniform weights: plain training."""
    return torch.ones_like(loss[:, -1])


def self_paced(loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Self-paced learning (Kumar et al., 2010), Eq. 2 with the threshold at the loss moving average:
    `1[loss_diff <= 0]`."""
    return closed_form(loss, loss_diff, epoch, label, lambda1=0.0, lambda2=0.0)


def hard_example_mining(
    loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor
) -> torch.Tensor:
    """Hard (negative) example mining (Felzenszwalb et al., 2010): `1[loss_diff >= 0]`; samples of a positive
    label (`label > 0`) always get weight 1."""
    return ((loss_diff[:, -1] >= 0) | (label > 0)).to(loss.dtype)


def focal(
    loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """Focal loss (Lin et al., 2017) as a weighting, the paper's Eq. 8: `(1 - exp(-loss)) ** gamma`."""
    return (1.0 - torch.exp(-loss[:, -1])) ** gamma


def spcl_linear(
    loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Self-paced curriculum learning with linear weighting (Jiang et al., 2015): `clip(1 - loss_diff / gamma, 0, 1)`,
    Eq. 7 with `lambda1 = l_pt` and `lambda2 = gamma`."""
    return closed_form(loss, loss_diff, epoch, label, lambda1=0.0, lambda2=gamma)


def mentornet_pd(
    loss: torch.Tensor,
    loss_diff: torch.Tensor,
    epoch: torch.Tensor,
    label: torch.Tensor,
    burn_in_epoch: int = 18,
    linear_from_epoch: int = 90,
    gamma: float = 1.0,
) -> torch.Tensor:
    """MentorNet PD as the authors' released code defines it: weight 1 up to `burn_in_epoch`, self-paced
    (Eq. 7, `lambda2 = 0`) until `linear_from_epoch`, then SPCL linear (Eq. 7, `lambda2 = gamma`).

    The paper describes PD as Eq. 5 with tuned `lambda1, lambda2` (see [`closed_form`], also available as the
    `"closed-form"` curriculum); the released schedule is Eq. 7 with lambdas that change with training progress.
    """
    current = loss_diff[:, -1]
    weights = torch.where(current <= 0, 1.0, 0.0).to(loss.dtype)
    weights = torch.where(epoch >= linear_from_epoch, (1.0 - current / gamma).clamp(0.0, 1.0), weights)
    return torch.where(epoch <= burn_in_epoch, torch.ones_like(weights), weights)


def prediction_variance(
    loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor
) -> torch.Tensor:
    """Prediction variance (Chang et al., 2017, "active bias"): emphasise samples whose predicted probability of the
    given label, `exp(-loss)`, varies most over the loss history. The weight is that standard deviation over the
    `T` steps, scaled by its maximum (0.5) into [0, 1]. Needs a loss history (`T >= 2`)."""
    if loss.shape[1] < 2:
        raise ValueError(
            "The 'prediction-variance' curriculum needs a loss history: use a MentorNetConfig with num_steps >= 2 "
            "(the paper's Appendix D uses 10)."
        )
    return (2.0 * torch.exp(-loss).std(dim=1, unbiased=False)).clamp(0.0, 1.0)


def temporal_mixture(
    loss: torch.Tensor, loss_diff: torch.Tensor, epoch: torch.Tensor, label: torch.Tensor, switch_epoch: int = 50
) -> torch.Tensor:
    """The paper's temporal mixture (Appendix D): self-paced before `switch_epoch`, hard example mining after."""
    return torch.where(
        epoch < switch_epoch,
        self_paced(loss, loss_diff, epoch, label),
        hard_example_mining(loss, loss_diff, epoch, label),
    )


CURRICULA: dict[str, Callable[..., torch.Tensor]] = {
    "baseline": baseline,
    "self-paced": self_paced,
    "hard-example-mining": hard_example_mining,
    "focal": focal,
    "spcl-linear": spcl_linear,
    "closed-form": closed_form,
    "mentornet-pd": mentornet_pd,
    "prediction-variance": prediction_variance,
    "temporal-mixture": temporal_mixture,
}
"""Every predefined curriculum by name."""


def validate_curriculum_name(name: str) -> Callable[..., torch.Tensor]:
    """Return the curriculum function called `name`, or raise a `ValueError` listing the valid names."""
    if name not in CURRICULA:
        raise ValueError(f"Unknown curriculum {name!r}; the predefined curricula are: {', '.join(CURRICULA)}.")
    return CURRICULA[name]


def curriculum_weights(
    name: str,
    loss: torch.Tensor,
    loss_diff: torch.Tensor,
    epoch: torch.Tensor | int,
    label: torch.Tensor | None = None,
    **params: Any,
) -> torch.Tensor:
    """Weights in [0, 1] of the predefined curriculum `name` for a batch of features.

    Args:
        name: a key of [`CURRICULA`].
        loss, loss_diff: `(n,)` or `(n, T)` float tensors (a history, oldest first).
        epoch: `(n,)` integer tensor or one int, training progress in 0..99.
        label: `(n,)` integer tensor, defaults to zeros.
        **params: the curriculum's parameters (e.g. `gamma` for focal and SPCL linear).
    """
    function = validate_curriculum_name(name)
    accepted = list(inspect.signature(function).parameters)[4:]
    for key, value in params.items():
        if key not in accepted:
            raise ValueError(
                f"The {name!r} curriculum has no parameter {key!r}; its parameters are {accepted or 'none'}."
            )
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"The {name!r} curriculum's `{key}`={value!r} must be a finite number.")
    if loss.dim() == 1:
        loss, loss_diff = loss.unsqueeze(1), loss_diff.unsqueeze(1)
    if isinstance(epoch, int):
        epoch = torch.full(loss.shape[:1], epoch, dtype=torch.long, device=loss.device)
    if label is None:
        label = torch.zeros(loss.shape[:1], dtype=torch.long, device=loss.device)
    weights = function(loss, loss_diff, epoch, label, **params)
    if not (torch.isfinite(weights) & (weights >= 0) & (weights <= 1)).all():
        raise ValueError(
            f"The {name!r} curriculum with {params or 'its defaults'} gives weights that are NaN or outside [0, 1] "
            "on these features, so no MentorNet can be learned from it; check its parameters (e.g. focal's and "
            "SPCL's `gamma` must be >= 0)."
        )
    return weights


# The enumerated feature space of the released code: loss in {0, 0.1, ..., 9.9} U {10, 11, ..., 29},
# loss_diff in {-5, -4.9, ..., 4.9}, epoch in 0..99.
GRID_LOSSES = torch.cat([torch.arange(100) / 10.0, torch.arange(10, 30, dtype=torch.float32)])
GRID_LOSS_DIFFS = torch.arange(-50, 50) / 10.0


def feature_grid(num_samples: int = 100_000, num_steps: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Sample `num_samples` points of the enumerated MentorNet feature space (Appendix D), uniformly and
    independently per feature (and per history step when `num_steps > 1`). Label is 0.

    Returns a dict with `loss`, `loss_diff` (float, `(n, num_steps)`), `epoch` and `label` (long, `(n,)`).
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (num_samples, num_steps)
    return {
        "loss": GRID_LOSSES[torch.randint(len(GRID_LOSSES), shape, generator=generator)],
        "loss_diff": GRID_LOSS_DIFFS[torch.randint(len(GRID_LOSS_DIFFS), shape, generator=generator)],
        "epoch": torch.randint(100, (num_samples,), generator=generator),
        "label": torch.zeros(num_samples, dtype=torch.long),
    }
