"""The loss baselines of the MentorNet paper (Appendix E.2): focal loss (Lin et al., 2017) and Reed et al.'s soft and
hard bootstrapping (2014), as per-sample losses and as [`RobustLossTrainer`], plain training with one of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..weighted_trainer import WeightedLossArguments, WeightedLossTrainer, label_range_error

__all__ = ["RobustLossConfig", "RobustLossTrainer", "focal_loss", "reed_hard_loss", "reed_soft_loss"]

LOSS_TYPES = ("focal", "reed-soft", "reed-hard")


def _label_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_probs = F.log_softmax(logits.float(), dim=-1)
    return log_probs, log_probs.gather(1, labels[:, None]).squeeze(1)


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Focal loss (Lin et al., 2017) per sample: `-(1 - p_y)^gamma * log p_y`.

    The factor `(1 - p_y)^gamma` is part of the objective (gradients flow through it), as in Lin et al.; `gamma=0`
    is the cross-entropy. The MentorNet paper tunes `gamma` in {1, 2, 3}.

    Args:
        logits (`torch.Tensor` of shape `(batch_size, num_classes)`): the student's logits.
        labels (`torch.LongTensor` of shape `(batch_size,)`): the (noisy) class indices.
        gamma (`float`): the focusing parameter, >= 0.

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, float32.
    """
    _, log_p = _label_log_probs(logits, labels)
    # 1 - p_y computed as -expm1(log p_y): exact for confident predictions, where 1 - exp(.) cancels.
    return -((-torch.expm1(log_p)).clamp(min=0.0) ** gamma) * log_p


def reed_soft_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    r"""Soft bootstrapping (Reed et al., 2014; MentorNet paper Appendix E.2 Eq. 31) per sample:
    `-(beta * log q_y + (1 - beta) * sum_j q_j log q_j)`.

    The prediction `q` in the target is NOT detached: Reed et al. derive the soft version as cross-entropy plus
    `(1 - beta)` times a minimum-entropy regulariser on `q`, so the gradient flows through both terms. `beta=1` is
    the cross-entropy.

    Args:
        logits (`torch.Tensor` of shape `(batch_size, num_classes)`): the student's logits.
        labels (`torch.LongTensor` of shape `(batch_size,)`): the (noisy) class indices.
        beta (`float`): the weight of the given label, in (0, 1] (the paper tunes {0.7, 0.8, 0.9, 0.95}).

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, float32.
    """
    log_probs, log_q_y = _label_log_probs(logits, labels)
    entropy_term = (log_probs.exp() * log_probs).sum(-1)
    return -(beta * log_q_y + (1.0 - beta) * entropy_term)


def reed_hard_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    r"""Hard bootstrapping (Reed et al., 2014; MentorNet paper Appendix E.2 Eq. 32) per sample:
    `-(beta * log q_y + (1 - beta) * max_j log q_j)`.

    The predicted class (the MAP estimate, an argmax) is a constant; the gradient flows through `log q` at it, as in
    Reed et al.'s objective. `beta=1` is the cross-entropy. Arguments and return value as [`reed_soft_loss`].
    """
    log_probs, log_q_y = _label_log_probs(logits, labels)
    return -(beta * log_q_y + (1.0 - beta) * log_probs.max(-1).values)


@dataclass
class RobustLossConfig(WeightedLossArguments):
    r"""Arguments of [`RobustLossTrainer`]: plain training (every weight 1) with a noise-robust loss."""

    loss_type: str = field(
        default="focal",
        metadata={
            "help": "'focal' (Lin et al., 2017; `focal_gamma`), 'reed-soft' or 'reed-hard' (Reed et al., 2014 "
            "bootstrapping; `reed_beta`).",
            "choices": list(LOSS_TYPES),
        },
    )
    focal_gamma: float = field(
        default=2.0,
        metadata={"help": "loss_type='focal': gamma >= 0 of -(1 - p_y)^gamma log p_y (the paper tunes 1, 2, 3)."},
    )
    reed_beta: float = field(
        default=0.8,
        metadata={
            "help": "loss_type='reed-soft'/'reed-hard': beta in (0, 1], the weight of the given label against the "
            "prediction (the paper tunes 0.7, 0.8, 0.9, 0.95; 1 is the cross-entropy)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"`loss_type`={self.loss_type!r} is not supported; use one of {list(LOSS_TYPES)}.")
        if self.focal_gamma < 0:
            raise ValueError(f"`focal_gamma`={self.focal_gamma!r} must be >= 0 (0 is the cross-entropy), e.g. 2.")
        if not 0.0 < self.reed_beta <= 1.0:
            raise ValueError(f"`reed_beta`={self.reed_beta!r} must be in (0, 1] (1 is the cross-entropy), e.g. 0.8.")
        if self.label_smoothing_factor > 0:
            raise ValueError(
                f"`label_smoothing_factor`={self.label_smoothing_factor!r} applies to the cross-entropy only, but "
                f"`loss_type`={self.loss_type!r}; set it to 0."
            )


class RobustLossTrainer(WeightedLossTrainer):
    """Plain training (every weight 1) of the loss `args.loss_type`: the paper's focal and Reed baselines.
    Evaluation and the label-issue ranking's final losses use the plain cross-entropy."""

    args_class = RobustLossConfig

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        try:
            if self.args.loss_type == "focal":
                return focal_loss(logits, labels, self.args.focal_gamma)
            if self.args.loss_type == "reed-soft":
                return reed_soft_loss(logits, labels, self.args.reed_beta)
            return reed_hard_loss(logits, labels, self.args.reed_beta)
        except (IndexError, RuntimeError) as error:
            raise label_range_error(logits, labels) from error
