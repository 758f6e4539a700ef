"""MentorNet configuration: the architecture, the training settings that belong with a curriculum, and how
the curriculum was learned."""

from __future__ import annotations

import math
from typing import Any

from transformers import PretrainedConfig

__all__ = ["MentorNetConfig", "validate_dropout_schedule"]

# The released DD command's example-dropout schedule: (rate, percent of training) pairs summing to 100.
DD_DROPOUT_SCHEDULE = [[0.5, 17], [0.05, 78], [0.9, 5]]
PD_DROPOUT_SCHEDULE = [[0.5, 17], [0.05, 83]]


def validate_dropout_schedule(schedule: list[list[float]] | None, *, in_percent: bool = True) -> None:
    """Check an example-dropout schedule: (rate, length) pairs, rates in [0, 1), lengths positive and, in percent of
    training (`in_percent`), summing to 100 (in steps or epochs the last rate holds to the end)."""
    if schedule is None:
        return
    length = "percent" if in_percent else "length"
    if not isinstance(schedule, list | tuple):
        raise ValueError(
            f"`example_dropout_schedule`={schedule!r} must be a list of (rate, {length}) pairs, e.g. [[0.5, 17], "
            "[0.05, 83]]."
        )
    total = 0.0
    for pair in schedule:
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(value, int | float) and not isinstance(value, bool) for value in pair)
        ):
            raise ValueError(
                f"`example_dropout_schedule`={schedule!r}: each entry must be a (rate, {length}) pair of numbers, got "
                f"{pair!r}."
            )
        rate, percent = pair
        if not (0.0 <= rate < 1.0 and 0.0 < percent < math.inf):
            raise ValueError(
                f"`example_dropout_schedule`={schedule!r}: rates must be in [0, 1) and {length}s positive and finite, "
                f"got {pair!r}."
            )
        total += percent
    if in_percent and abs(total - 100.0) > 1e-6:
        raise ValueError(
            f"`example_dropout_schedule`={schedule!r} covers {total:g}% of training; the percents must sum to 100, "
            "e.g. [[0.5, 17], [0.05, 83]]."
        )


class MentorNetConfig(PretrainedConfig):
    r"""
    Configuration of a [`MentorNetModel`]: the network of Jiang et al. (ICML 2018, Fig. 1), the training settings
    a curriculum was meant to be used with, and a record of how it was learned.

    Architecture (defaults are the authors' released code, used in the paper's Sec. 5.1 experiments; the paper's
    Appendix D uses `hidden_size=10`, `num_steps=10`):

    Args:
        hidden_size (`int`, *optional*, defaults to 1):
            Units per direction of the bidirectional LSTM over the per-step `[loss, loss_diff]` features.
        num_steps (`int`, *optional*, defaults to 1):
            Length of the loss history fed to the LSTM (1 = only the current loss).
        label_vocab_size (`int`, *optional*, defaults to 2):
            Rows of the label embedding. The released code always feeds label 0 so that one MentorNet transfers
            across datasets with different numbers of classes.
        label_embedding_size (`int`, *optional*, defaults to 2):
            Width of the label embedding.
        num_epochs (`int`, *optional*, defaults to 100):
            Rows of the epoch embedding: training progress as an integer percentage in `[0, num_epochs)`.
        epoch_embedding_size (`int`, *optional*, defaults to 5):
            Width of the epoch embedding.
        trainable_epoch_embedding (`bool`, *optional*, defaults to `False`):
            The released code keeps the epoch embedding at its random initialisation.
        fc_hidden_size (`int`, *optional*, defaults to 20):
            Units of `fc1` (tanh).

    Training settings that travel with the curriculum (read by `MentorNetTrainer` unless overridden):

    Args:
        loss_p_percentile (`float`, *optional*, defaults to 0.75):
            Percentile (as a fraction) of the mini-batch losses whose moving average gives `loss_diff`.
        loss_moving_average_decay (`float`, *optional*, defaults to 0.95):
            Decay of that moving average. The paper (Sec. 5.1) says 0.95; the released code's flag default is 0.5.
        burn_in_fraction (`float`, *optional*, defaults to 0.2):
            Fraction of training during which every weight is 1 (paper: the first 20%; the released PD command
            uses 0).
        fixed_epoch_after_burn_in (`bool`, *optional*, defaults to `False`):
            Feed the epoch at the end of burn-in to the MentorNet for the rest of training (released DD command).
        example_dropout_schedule (`list[list[float]]`, *optional*):
            `(rate, percent of training)` pairs summing to 100: at each step a random `rate` of the batch gets
            weight 0 (Liang et al., 2016). `None` disables example dropout.

    Provenance (shown in the model card):

    Args:
        curriculum_name (`str`, *optional*): e.g. `"mentornet_pd"`, `"self_paced"`, `"data_driven"`.
        curriculum_kind (`str`, *optional*): `"predefined"` or `"data-driven"`.
        curriculum_params (`dict`, *optional*): parameters of the predefined curriculum (gamma, lambdas...).
        learned_from (`dict`, *optional*): how it was learned: source dataset, noise rate, student, steps,
            seed, final MSE / cross-entropy, held-out accuracy...
    """

    model_type = "mentornet"

    def __init__(
        self,
        hidden_size: int = 1,
        num_steps: int = 1,
        label_vocab_size: int = 2,
        label_embedding_size: int = 2,
        num_epochs: int = 100,
        epoch_embedding_size: int = 5,
        trainable_epoch_embedding: bool = False,
        fc_hidden_size: int = 20,
        loss_p_percentile: float = 0.75,
        loss_moving_average_decay: float = 0.95,
        burn_in_fraction: float = 0.2,
        fixed_epoch_after_burn_in: bool = False,
        example_dropout_schedule: list[list[float]] | None = None,
        curriculum_name: str | None = None,
        curriculum_kind: str | None = None,
        curriculum_params: dict[str, Any] | None = None,
        learned_from: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for name, value in (("hidden_size", hidden_size), ("num_steps", num_steps), ("num_epochs", num_epochs)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}`={value!r} must be a positive integer.")
        if not 0.0 < loss_p_percentile <= 1.0:
            raise ValueError(
                f"`loss_p_percentile`={loss_p_percentile!r} must be a fraction in (0, 1], e.g. 0.75 for the 75th."
            )
        if not 0.0 <= loss_moving_average_decay < 1.0:
            raise ValueError(f"`loss_moving_average_decay`={loss_moving_average_decay!r} must be in [0, 1).")
        if not 0.0 <= burn_in_fraction < 1.0:
            raise ValueError(f"`burn_in_fraction`={burn_in_fraction!r} must be in [0, 1), e.g. 0.2.")
        validate_dropout_schedule(example_dropout_schedule)
        if curriculum_kind not in (None, "predefined", "data-driven"):
            raise ValueError(f"`curriculum_kind`={curriculum_kind!r} must be 'predefined' or 'data-driven'.")
        self.hidden_size = hidden_size
        self.num_steps = num_steps
        self.label_vocab_size = label_vocab_size
        self.label_embedding_size = label_embedding_size
        self.num_epochs = num_epochs
        self.epoch_embedding_size = epoch_embedding_size
        self.trainable_epoch_embedding = trainable_epoch_embedding
        self.fc_hidden_size = fc_hidden_size
        self.loss_p_percentile = loss_p_percentile
        self.loss_moving_average_decay = loss_moving_average_decay
        self.burn_in_fraction = burn_in_fraction
        self.fixed_epoch_after_burn_in = fixed_epoch_after_burn_in
        self.example_dropout_schedule = example_dropout_schedule
        self.curriculum_name = curriculum_name
        self.curriculum_kind = curriculum_kind
        self.curriculum_params = dict(curriculum_params or {})
        self.learned_from = dict(learned_from or {})
        super().__init__(**kwargs)
