"""Training arguments of [`MentorNetTrainer`]."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

from .configuration_mentornet import validate_dropout_schedule
from .learning import DD_TARGETS
from .weighted_trainer import WeightedLossArguments

__all__ = ["MentorNetTrainingArguments"]

CURRICULUM_TYPES = ("mentornet", "closed-form")
LOSS_NORMALIZATIONS = ("batch_size", "weight_sum")
SCHEDULE_UNITS = ("percent", "steps", "epochs")
# The on-policy DD's candidate loss percentiles: low ones too, for high noise (p is the largest below the trusted rows'
# share of right labels).
DD_CANDIDATE_PERCENTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.8, 0.9)
# The training settings a curriculum's config recommends; `None` here means "the curriculum's value".
CURRICULUM_SETTINGS = (
    "loss_p_percentile",
    "loss_moving_average_decay",
    "burn_in_fraction",
    "fixed_epoch_after_burn_in",
    "example_dropout_schedule",
)


@dataclass
class MentorNetTrainingArguments(WeightedLossArguments):
    r"""
    Arguments of [`MentorNetTrainer`]: training a classifier (the StudentNet) with per-sample weights from a
    curriculum (Jiang et al., ICML 2018, Algorithm 1 "SPADE").

    The curriculum's own training settings (`loss_p_percentile`, `loss_moving_average_decay`, `burn_in_fraction`,
    `fixed_epoch_after_burn_in`, `example_dropout_schedule`) are read from its [`MentorNetConfig`]; the arguments
    of the same names override them when set (`None` = the curriculum's value). [`MentorNetTrainer`] resolves them
    when it is built: its `args` hold the values used.
    """

    curriculum: str = field(
        default="mentornet-pd",
        metadata={
            "help": "The MentorNet: a local directory written by `save_pretrained`, the name of a shipped curriculum "
            "or a Hub id. A `MentorNetModel` passed to the trainer as `curriculum=` takes precedence."
        },
    )
    curriculum_type: str = field(
        default="mentornet",
        metadata={
            "help": "'mentornet': weights from the learned MentorNet (Algorithm 1 step 11). 'closed-form': the "
            "known-G branch (step 9), a per-sample weight updated by projected gradient descent on Eq. 6.",
            "choices": list(CURRICULUM_TYPES),
        },
    )
    closed_form_lambda1: float = field(
        default=0.0,
        metadata={"help": "lambda1 of the curriculum G of Eq. 5 (curriculum_type='closed-form'): the loss threshold."},
    )
    closed_form_lambda2: float = field(
        default=1.0,
        metadata={"help": "lambda2 of Eq. 5 (curriculum_type='closed-form'): the width of the linear weighting."},
    )
    closed_form_step_size: float | None = field(
        default=None,
        metadata={
            "help": "Step size alpha of the weight update v <- clip(v - alpha * dF/dv, 0, 1) (curriculum_type="
            "'closed-form'). Default 1 / lambda2, which makes one update land on Eq. 7's closed form (1 if lambda2 "
            "is 0, where v moves by the loss margin per visit)."
        },
    )
    closed_form_relative: bool = field(
        default=True,
        metadata={
            "help": "curriculum_type='closed-form': use the loss minus its moving average (loss_diff) as the loss in "
            "Eq. 6, so lambda1 is measured from the p-th percentile moving average (as the 'closed-form' curriculum "
            "of hf_mentornet.curricula); False uses the raw loss as Eq. 6 is written."
        },
    )
    loss_p_percentile: float | None = field(
        default=None,
        metadata={
            "help": "Percentile (fraction in (0, 1]) of the batch losses behind the moving average. None: the "
            "curriculum's value."
        },
    )
    loss_moving_average_decay: float | None = field(
        default=None,
        metadata={"help": "Decay of the loss moving average, in [0, 1). None: the curriculum's value."},
    )
    loss_moving_average_bias_correction: bool = field(
        default=True,
        metadata={
            "help": "Divide the loss moving average by 1 - decay^t after t steps, as Adam does: the weighted mean of "
            "the percentiles seen so far, right from the first step. The released code starts the average at 0 "
            "without it (False), so for its first ~45 steps (decay 0.95) it is more than 10% below the percentiles it "
            "averages: harmless in from-scratch training, where burn-in covers them, but most of a short fine-tuning "
            "run. Once decay^t underflows in float32 (t >= 338 at 0.95) both give the same average."
        },
    )
    burn_in_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Fraction of training during which every weight is 1, in [0, 1). None: the curriculum's value "
            "(unless `burn_in_steps` or `burn_in_epochs` is set)."
        },
    )
    burn_in_steps: int | None = field(
        default=None,
        metadata={
            "help": "Burn-in as a number of optimizer steps instead of a fraction of training (as `warmup_steps` is "
            "to `warmup_ratio`). A curriculum's fraction is made for ~100-epoch training from scratch; a short "
            "fine-tuning run may want a few steps, or 0."
        },
    )
    burn_in_epochs: float | None = field(
        default=None,
        metadata={"help": "Burn-in as a number of epochs (may be fractional) instead of a fraction of training."},
    )
    curriculum_ramp_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Fraction of training after burn-in over which the weights move linearly from 1 to the "
            "curriculum's (v = 1 - a * (1 - v_curriculum), a rising from 0 to 1), so the student is not switched at "
            "once from every sample to the curriculum's selection. Not in the paper, whose Algorithm 1 serves the "
            "curriculum's weights from the end of burn-in: 0 (the default) does that."
        },
    )
    fixed_epoch_after_burn_in: bool | None = field(
        default=None,
        metadata={
            "help": "Feed the epoch at the end of burn-in to the MentorNet for the rest of training. None: the "
            "curriculum's value."
        },
    )
    example_dropout_schedule: list[list[float]] | str | None = field(
        default=None,
        metadata={
            "help": "Example dropout as (rate, percent of training) pairs summing to 100, as a list or as the released "
            "flag's string '0.5,17,0.05,83'. [[0, 100]] disables it. None: the curriculum's value. With "
            "`example_dropout_schedule_unit` 'steps' or 'epochs' the pairs are (rate, length in that unit) and the "
            "last rate holds to the end of training."
        },
    )
    example_dropout_schedule_unit: str = field(
        default="percent",
        metadata={
            "help": "The unit of the lengths in `example_dropout_schedule`: 'percent' of training (the curriculum's and "
            "the released code's), optimizer 'steps', or 'epochs'. 'steps' / 'epochs' need the schedule given here.",
            "choices": list(SCHEDULE_UNITS),
        },
    )
    loss_percentile_per_class: bool = field(
        default=False,
        metadata={
            "help": "Keep one moving average of the p-th loss percentile per (noisy) label class and give each sample "
            "its gap to its own class's average as `loss_diff`. Not in the paper, whose single batch-wide average "
            "lets loss-based selection starve a class the student finds hard: its losses are high, so its samples "
            "are dropped, so it stays hard. Per class, each class keeps its easiest samples. On noisy CIFAR-10 "
            "(the project's benchmark) it ends that starvation but does not raise the student's accuracy."
        },
    )
    loss_normalization: str = field(
        default="batch_size",
        metadata={
            "help": "What the weighted loss sum(v_i * l_i) is divided by. 'batch_size': b, the paper's objective "
            "(Eq. 1 / Algorithm 1), so a batch whose weights are small takes a small step. 'weight_sum': sum(v_i) "
            "over the global batch (per micro-batch with gradient accumulation), a weighted mean whose step does "
            "not shrink with the curriculum's selection, as co-teaching averages over the samples it keeps; then "
            "`scale_weight_decay_by_mean_weight`, which compensates the /b step, is usually left off.",
            "choices": list(LOSS_NORMALIZATIONS),
        },
    )
    curriculum_update_at: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Fractions of training at which the MentorNet is re-learned (Algorithm 1 step 6; the paper uses "
            "0.21 0.75). Empty: never, as the released code."
        },
    )
    curriculum_update_steps: int = field(
        default=500,
        metadata={
            "help": "Optimisation steps of each MentorNet re-fit (curriculum_update_at) and of each on-policy DD "
            "learning (`trusted_dataset`)."
        },
    )
    curriculum_update_buffer_size: int = field(
        default=20_000,
        metadata={
            "help": "Number of recent per-sample features kept to re-fit a predefined curriculum when no "
            "`curriculum_update_dataset` is given."
        },
    )

    dd_target: str = field(
        default="threshold",
        metadata={
            "help": "With a `trusted_dataset` (the on-policy DD): what the learned curriculum outputs. 'threshold' "
            "(default): weight 1 below, 0 above the loss_diff that best separates the trusted rows' right and wrong "
            "labels, a sharp curriculum that keeps Proposition 1 (noisy CIFAR-10, 40%: last accuracy 0.593 against "
            "0.475 balanced, 0.470 monotone; bench/RESULTS.md); 'posterior': the paper's calibrated P(right label); "
            "'balanced': the posterior under an even prior; 'monotone': the balanced posterior made to fall with "
            "loss_diff. See `learn_from_records`.",
            "choices": ["threshold", "posterior", "balanced", "monotone"],
        },
    )
    dd_percentiles: list[float] = field(
        default_factory=lambda: list(DD_CANDIDATE_PERCENTILES),
        metadata={
            "help": "With a `trusted_dataset`: the loss percentiles p the on-policy DD may be learned at. The largest "
            "below the trusted rows' share of right labels is used (the moving percentile then lies just inside the "
            "right labels' losses; without one, the smallest): the paper sets p by cross-validation, and on noisy "
            "CIFAR-10 larger p let memorised wrong labels back in while smaller ones dropped right labels "
            "(bench/RESULTS.md). "
            "One value: that p."
        },
    )
    dd_window_epochs: float = field(
        default=2.0,
        metadata={
            "help": "With a `trusted_dataset`: the on-policy DD learns from the trusted samples' features of the "
            "last this many epochs (each trusted sample appears once per epoch), the current student's."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dd_target not in DD_TARGETS:
            raise ValueError(
                f"`dd_target`={self.dd_target!r} is not supported; use one of {list(DD_TARGETS)} ('threshold' is the "
                "default)."
            )
        if not self.dd_percentiles or not all(0.0 < p <= 1.0 for p in self.dd_percentiles):
            raise ValueError(
                f"`dd_percentiles`={self.dd_percentiles!r} must be fractions in (0, 1], e.g. [0.5, 0.75, 0.9]."
            )
        if not self.dd_window_epochs > 0:
            raise ValueError(f"`dd_window_epochs`={self.dd_window_epochs!r} must be > 0, e.g. 2.")
        if self.curriculum_type not in CURRICULUM_TYPES:
            raise ValueError(
                f"`curriculum_type`={self.curriculum_type!r} is not supported; use one of {list(CURRICULUM_TYPES)}."
            )
        if self.loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(
                f"`loss_normalization`={self.loss_normalization!r} is not supported; use one of "
                f"{list(LOSS_NORMALIZATIONS)} ('batch_size' is the paper's)."
            )
        changed = [
            f.name for f in fields(self) if f.name.startswith("closed_form_") and getattr(self, f.name) != f.default
        ]
        if self.curriculum_type != "closed-form" and changed:
            raise ValueError(
                f"{changed} set the closed-form branch, but `curriculum_type`={self.curriculum_type!r}; set "
                "`curriculum_type='closed-form'` or leave them at their defaults."
            )
        if self.closed_form_lambda1 < 0 and not self.closed_form_relative:
            raise ValueError(f"`closed_form_lambda1`={self.closed_form_lambda1!r} must be >= 0 on the raw loss.")
        if self.closed_form_lambda2 < 0:
            raise ValueError(f"`closed_form_lambda2`={self.closed_form_lambda2!r} must be >= 0 (Eq. 5).")
        if self.closed_form_step_size is not None and self.closed_form_step_size <= 0:
            raise ValueError(f"`closed_form_step_size`={self.closed_form_step_size!r} must be positive.")
        if self.loss_p_percentile is not None and not 0.0 < self.loss_p_percentile <= 1.0:
            raise ValueError(
                f"`loss_p_percentile`={self.loss_p_percentile!r} must be a fraction in (0, 1], e.g. 0.75."
            )
        if self.loss_moving_average_decay is not None and not 0.0 <= self.loss_moving_average_decay < 1.0:
            raise ValueError(f"`loss_moving_average_decay`={self.loss_moving_average_decay!r} must be in [0, 1).")
        if self.burn_in_fraction is not None and not 0.0 <= self.burn_in_fraction < 1.0:
            raise ValueError(f"`burn_in_fraction`={self.burn_in_fraction!r} must be in [0, 1), e.g. 0.2.")
        burn_ins = {
            name: getattr(self, name)
            for name in ("burn_in_fraction", "burn_in_steps", "burn_in_epochs")
            if getattr(self, name) is not None
        }
        if len(burn_ins) > 1:
            raise ValueError(f"Burn-in is given twice, {burn_ins}: set one of them and leave the others None.")
        if self.burn_in_steps is not None and (
            not isinstance(self.burn_in_steps, int) or isinstance(self.burn_in_steps, bool) or self.burn_in_steps < 0
        ):
            raise ValueError(f"`burn_in_steps`={self.burn_in_steps!r} must be a whole number of steps >= 0.")
        if self.burn_in_epochs is not None and not 0.0 <= self.burn_in_epochs < math.inf:
            raise ValueError(f"`burn_in_epochs`={self.burn_in_epochs!r} must be a number of epochs >= 0, e.g. 1.")
        if not 0.0 <= self.curriculum_ramp_fraction < 1.0:
            raise ValueError(
                f"`curriculum_ramp_fraction`={self.curriculum_ramp_fraction!r} must be in [0, 1), e.g. 0.1 (0: no ramp)."
            )
        if self.example_dropout_schedule_unit not in SCHEDULE_UNITS:
            raise ValueError(
                f"`example_dropout_schedule_unit`={self.example_dropout_schedule_unit!r} is not a unit; use one of "
                f"{list(SCHEDULE_UNITS)}."
            )
        if isinstance(self.example_dropout_schedule, str):
            self.example_dropout_schedule = parse_dropout_schedule(self.example_dropout_schedule)
        in_percent = self.example_dropout_schedule_unit == "percent"
        if not in_percent and self.example_dropout_schedule is None:
            raise ValueError(
                f"`example_dropout_schedule_unit`={self.example_dropout_schedule_unit!r}, but no "
                "`example_dropout_schedule` is given (a curriculum's own is in percent): give one, e.g. [[0.5, 100], "
                "[0.05, 1000]] in steps, or leave the unit 'percent'."
            )
        validate_dropout_schedule(self.example_dropout_schedule, in_percent=in_percent)
        fractions = list(self.curriculum_update_at)
        if any(not 0.0 < fraction < 1.0 for fraction in fractions) or fractions != sorted(set(fractions)):
            raise ValueError(
                f"`curriculum_update_at`={fractions!r} must be increasing fractions of training in (0, 1), "
                "e.g. [0.21, 0.75]."
            )
        for name in ("curriculum_update_steps", "curriculum_update_buffer_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}`={getattr(self, name)!r} must be a positive integer.")


def parse_dropout_schedule(text: str) -> list[list[float]]:
    """Parse an example-dropout schedule written as JSON (`'[[0.5, 17], [0.05, 83]]'`) or as the released code's flag
    (`'0.5,17,0.05,83'`)."""
    try:
        if text.lstrip().startswith("["):
            return json.loads(text)
        values = [float(value) for value in text.split(",")]
    except ValueError as error:  # json.JSONDecodeError is one too
        raise ValueError(
            f"`example_dropout_schedule`={text!r} cannot be read ({error}); write (rate, percent) pairs as "
            "'0.5,17,0.05,83' or as JSON '[[0.5, 17], [0.05, 83]]'."
        ) from error
    if len(values) % 2:
        raise ValueError(
            f"`example_dropout_schedule`={text!r} must hold (rate, percent) pairs, e.g. '0.5,17,0.05,83'."
        )
    return [values[i : i + 2] for i in range(0, len(values), 2)]
