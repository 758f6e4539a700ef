"""How well a curriculum's sample weights separate clean from noisy labels."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import roc_auc_score

_DESCRIPTION = """
Diagnostics of the sample weights a curriculum (e.g. MentorNet) gives to training samples whose noisy labels are
known (controlled noise, or a verified subset of real noise). A good curriculum gives clean samples high weights
and noisy ones low weights:

- `mean_weight_clean`, `mean_weight_noisy`: the mean weight of each group.
- `selection_precision`: among the samples selected (weight >= threshold), the fraction whose label is clean.
- `selection_recall`: among the clean samples, the fraction selected.
- `noisy_auroc`: the area under the ROC curve of `1 - weight` as a score for finding the noisy labels
  (0.5 is chance, 1.0 a perfect ranking).

A quantity that is undefined for the inputs (no noisy sample, nothing selected, ...) is `nan`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): per-sample weights in [0, 1] (what the curriculum predicts of each label).
    references (`list` of `bool` or `int`): whether each sample's training label differs from its true label
        (`is_noisy`; 1 / True for a corrupted label).
    threshold (`float`, *optional*, defaults to 0.5): a sample is selected when its weight is >= threshold.

Returns:
    `dict` of `float`: `mean_weight_clean`, `mean_weight_noisy`, `selection_precision`, `selection_recall`,
    `noisy_auroc`.

Examples:
    >>> from hf_mentornet.metrics import load_metric
    >>> metric = load_metric("noisy_label_diagnostics")
    >>> metric.compute(predictions=[1.0, 0.5, 0.25, 0.75], references=[False, False, True, True])
    {'mean_weight_clean': 0.75, 'mean_weight_noisy': 0.5, 'selection_precision': 0.666..., 'selection_recall': 1.0,
     'noisy_auroc': 0.75}
"""

_CITATION = """
@inproceedings{jiang2018mentornet,
  title={MentorNet: Learning Data-Driven Curriculum for Very Deep Neural Networks on Corrupted Labels},
  author={Jiang, Lu and Zhou, Zhengyuan and Leung, Thomas and Li, Li-Jia and Fei-Fei, Li},
  booktitle={ICML},
  year={2018}
}
"""


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NoisyLabelDiagnostics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("bool")}
            ),
        )

    def _compute(self, predictions, references, threshold=0.5) -> dict[str, float]:
        weights = np.asarray(predictions, dtype=np.float64)
        noisy = np.asarray(references, dtype=bool)
        selected = weights >= threshold
        both_groups = 0 < noisy.sum() < noisy.size
        return {
            "mean_weight_clean": _mean(weights[~noisy]),
            "mean_weight_noisy": _mean(weights[noisy]),
            "selection_precision": _mean(~noisy[selected]),
            "selection_recall": _mean(selected[~noisy]),
            "noisy_auroc": float(roc_auc_score(noisy, 1.0 - weights)) if both_groups else float("nan"),
        }
