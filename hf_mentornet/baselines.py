"""The baselines of the MentorNet paper (Jiang et al., ICML 2018, Sec. 5.1 and Appendix E.2) and Co-teaching, as
building blocks of [`MentorNetTrainer`]: per-sample losses (focal loss, Reed et al.'s soft and hard bootstrapping),
Goldberger & Ben-Reuven's noise adaptation layer (the S-model) and Co-teaching's small-loss selection.

Each is selected by a method name in [`hf_mentornet.experiment.METHODS`] or by the training arguments
`loss_type`, `curriculum_type="self-paced"` and the student wrappers below.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

__all__ = [
    "CoTeachingPair",
    "NoiseAdaptationLayer",
    "co_teaching_forget_rate",
    "co_teaching_weights",
    "focal_loss",
    "reed_hard_loss",
    "reed_soft_loss",
    "self_paced_threshold",
]


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
    Reed et al.'s objective. `beta=1` is the cross-entropy.

    Args:
        logits (`torch.Tensor` of shape `(batch_size, num_classes)`): the student's logits.
        labels (`torch.LongTensor` of shape `(batch_size,)`): the (noisy) class indices.
        beta (`float`): the weight of the given label, in (0, 1] (the paper tunes {0.7, 0.8, 0.9, 0.95}).

    Returns:
        `torch.Tensor` of shape `(batch_size,)`, float32.
    """
    log_probs, log_q_y = _label_log_probs(logits, labels)
    return -(beta * log_q_y + (1.0 - beta) * log_probs.max(-1).values)


def self_paced_threshold(losses: torch.Tensor, percentile: float, growth: float, epoch: int) -> torch.Tensor:
    r"""The self-paced threshold `lambda_e = lambda_0 * growth^e` (Kumar et al., 2010, as in the MentorNet paper's
    Appendix E.2: lambda grows by 20% per epoch, `growth=1.2`, compounding).

    `lambda_0` is the `percentile` of the batch's losses, measured on every batch rather than fixed at the first
    one: a random student's first losses are all close to `log m`, so a number frozen there would select every
    sample after a few steps; measured per batch it keeps Jiang et al. (2014)'s meaning, "the easiest
    `percentile` of the samples" at epoch 0, and admits more samples as `lambda` grows. The weight of a sample is
    `1[loss <= lambda_e]`.

    Args:
        losses (`torch.Tensor` of shape `(batch_size,)`): the batch's per-sample losses.
        percentile (`float`): in (0, 1], e.g. 0.5 (the paper tunes the 50th, 60th and 75th percentile).
        growth (`float`): the factor per epoch, >= 1.
        epoch (`int`): the number of completed epochs.
    """
    return torch.quantile(losses.float(), percentile) * growth**epoch


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


def _logits(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    if isinstance(model, PreTrainedModel):
        return model(pixel_values=pixel_values).logits
    return model(pixel_values)


class NoiseAdaptationLayer(nn.Module):
    r"""Goldberger & Ben-Reuven (2017)'s S-model: a learned label-noise channel appended to a student.

    The channel is `T = softmax(transition_logits, dim=1)`, an `m x m` row-stochastic matrix where `T[i, j]` is the
    probability that true class `i` is labelled `j`, initialised to `diagonal` on the diagonal and the rest spread
    evenly (`transition_logits = log T_0`), i.e. near the identity. In training mode `forward` returns
    `log(softmax(student logits) @ T)`, the log-probabilities of the noisy label, so the trainer's cross-entropy on
    them is the S-model's training loss; in evaluation mode it returns the student's own logits (the channel is
    removed at test time, as in the paper). The channel's parameters are part of the state dict: it is saved with
    the student. Goldberger & Ben-Reuven start from a student pre-trained without the channel; here both are
    trained from the start, which the near-identity initialisation allows.

    Args:
        student (`nn.Module`): the classifier (a transformers image classifier or a module taking `pixel_values`).
        num_labels (`int`): the number of classes `m`.
        diagonal (`float`, *optional*, defaults to 0.9): the initial probability of keeping the label, in (1/m, 1).
    """

    def __init__(self, student: nn.Module, num_labels: int, diagonal: float = 0.9) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"`num_labels`={num_labels!r}: the noise channel needs at least 2 classes.")
        if not 1.0 / num_labels < diagonal < 1.0:
            raise ValueError(
                f"`diagonal`={diagonal!r} must be in (1/num_labels, 1) = ({1.0 / num_labels:.3g}, 1), e.g. 0.9: "
                "the channel starts near the identity."
            )
        self.student = student
        initial = torch.full((num_labels, num_labels), (1.0 - diagonal) / (num_labels - 1))
        initial.fill_diagonal_(diagonal)
        self.transition_logits = nn.Parameter(initial.log())

    def transition(self) -> torch.Tensor:
        """The noise channel `T` (rows sum to 1)."""
        return self.transition_logits.softmax(dim=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = _logits(self.student, pixel_values)
        if not self.training:
            return logits
        # log(sum_i p_i T_ij) in log space, for stability: logsumexp_i(log p_i + log T_ij).
        log_probs = F.log_softmax(logits.float(), dim=-1)
        log_transition = F.log_softmax(self.transition_logits, dim=1)
        return torch.logsumexp(log_probs[:, :, None] + log_transition[None], dim=1)


class CoTeachingPair(nn.Module):
    r"""The two networks of Co-teaching (Han et al., 2018), trained together by [`MentorNetTrainer`].

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
        logits = _logits(self.student, pixel_values)
        if not self.training:
            return logits
        return torch.stack([logits, _logits(self.peer, pixel_values)])
