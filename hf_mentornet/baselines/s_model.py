"""Goldberger & Ben-Reuven (2017)'s S-model, a baseline of the MentorNet paper (Appendix E.2): a learned label-noise
channel on top of the student, trained by plain training ([`WeightedLossTrainer`])."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..students import student_logits

__all__ = ["NoiseAdaptationLayer"]


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
        logits = student_logits(self.student, pixel_values)
        if not self.training:
            return logits
        # log(sum_i p_i T_ij) in log space, for stability: logsumexp_i(log p_i + log T_ij).
        log_probs = F.log_softmax(logits.float(), dim=-1)
        log_transition = F.log_softmax(self.transition_logits, dim=1)
        return torch.logsumexp(log_probs[:, :, None] + log_transition[None], dim=1)
