"""The label-issue ranking: which training samples most likely carry a wrong label, from the weights a trainer gave
them and its final student's predictions. It works from per-sample running sums kept during training
([`LabelIssueAggregates`]: the sum of weights, the sum of losses and a count per `sample_index`), so its memory is
three numbers per training sample whatever the number of epochs or steps."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import torch

__all__ = ["LabelIssueAggregates", "rank_label_issues"]


class LabelIssueAggregates:
    """Per-sample running sums of the weight and the loss, and a count, indexed by `sample_index`. Kept on
    `device`.

    Args:
        device (`torch.device` or `str`): where the sums live (the training device).
        num_samples (`int`, *optional*):
            The number of indices, when known (a sized training set: its largest `sample_index` + 1): adding a batch
            then makes no host sync, and an index past it is an error. Without it (a stream) the sums grow as
            larger indices arrive, which reads each batch's largest index (one host sync per batch).
    """

    def __init__(self, device: torch.device | str, num_samples: int | None = None) -> None:
        self.num_samples = num_samples
        self.weight_sum = torch.zeros(num_samples or 0, dtype=torch.float64, device=device)
        self.loss_sum = torch.zeros(num_samples or 0, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_samples or 0, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return self.count.shape[0]

    @property
    def nbytes(self) -> int:
        """The memory the sums take, in bytes."""
        return sum(tensor.element_size() * tensor.numel() for tensor in (self.weight_sum, self.loss_sum, self.count))

    def _grow(self, size: int) -> None:
        # To the largest index seen, exactly: in a shuffled epoch the largest index so far grows about ln(n) times.
        for name in ("weight_sum", "loss_sum", "count"):
            old = getattr(self, name)
            new = torch.zeros(size, dtype=old.dtype, device=old.device)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    @torch.no_grad()
    def add(
        self, sample_index: torch.Tensor, weights: torch.Tensor, losses: torch.Tensor, counted: torch.Tensor
    ) -> None:
        """Count one batch: `weights` and `losses` of the samples `sample_index` where `counted` is True (all of
        shape `(batch_size,)`; a sample that did not train is not counted)."""
        sample_index = sample_index.to(self.count.device)
        counted = counted.to(self.count.device)
        if self.num_samples is None:  # the size check reads the largest index: one host sync
            largest = int(sample_index.max())
            if largest >= len(self):
                self._grow(largest + 1)
        self.weight_sum.index_add_(0, sample_index, weights.to(self.weight_sum) * counted)
        self.loss_sum.index_add_(0, sample_index, losses.to(self.loss_sum) * counted)
        self.count.index_add_(0, sample_index, counted.long())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weight_sum": self.weight_sum, "loss_sum": self.loss_sum, "count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self.count.device
        self.weight_sum, self.loss_sum, self.count = (
            state[name].to(device) for name in ("weight_sum", "loss_sum", "count")
        )
        if self.num_samples is not None and len(self) < self.num_samples:  # sums that grew (an older checkpoint)
            self._grow(self.num_samples)


def rank_label_issues(predictions: dict[str, Any], aggregates: LabelIssueAggregates) -> datasets.Dataset:
    """Rank samples by how likely their label is wrong.

    The score is `(1 - mean weight) + 1[predicted label != given label]`: the mean weight the trainer gave the
    sample over the part of training `aggregates` counted (1 for a sample it never counted) and the final student's
    prediction. Ties are broken by the sample's mean counted loss (its final loss when it was never counted).
    Samples labelled -100 (unlabelled, transformers' ignore index) carry no label to be wrong and are left out.

    Args:
        predictions (`dict[str, np.ndarray]`): the final student's `sample_index`, `label` (the given label),
            `predicted_label` and `loss` per sample.
        aggregates ([`LabelIssueAggregates`]): the weights and losses counted during training.

    Returns:
        `datasets.Dataset` with `sample_index`, `label`, `predicted_label`, `score`, `mean_weight` and `mean_loss`,
        most suspicious first.
    """
    labelled = np.asarray(predictions["label"]) != -100
    predictions = {name: np.asarray(values)[labelled] for name, values in predictions.items()}
    sample_index = predictions["sample_index"]
    mean_weight = np.ones(len(sample_index))
    mean_loss = np.asarray(predictions["loss"], dtype=np.float64).copy()
    count = aggregates.count.cpu().numpy()
    known = sample_index < len(count)
    seen = np.zeros(len(sample_index), dtype=bool)
    seen[known] = count[sample_index[known]] > 0
    if seen.any():
        rows = sample_index[seen]
        mean_weight[seen] = aggregates.weight_sum.cpu().numpy()[rows] / count[rows]
        mean_loss[seen] = aggregates.loss_sum.cpu().numpy()[rows] / count[rows]
    score = (1.0 - mean_weight) + (predictions["predicted_label"] != predictions["label"])
    order = np.lexsort((-mean_loss, -score))
    return datasets.Dataset.from_dict(
        {
            "sample_index": sample_index[order],
            "label": np.asarray(predictions["label"])[order],
            "predicted_label": np.asarray(predictions["predicted_label"])[order],
            "score": score[order],
            "mean_weight": mean_weight[order],
            "mean_loss": mean_loss[order],
        }
    )
