"""Top-k accuracy: the fraction of samples whose true class is among the k highest-scoring classes."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, top_k_accuracy_score

_DESCRIPTION = """
Top-k accuracy, as reported for WebVision and ImageNet (the paper's Tables 4 and 5: P@1 and P@5).
A sample counts as correct at k when its reference class is among the k classes with the highest scores.
Top-1 is the argmax accuracy (ties go to the lower class index); for k > 1 it is scikit-learn's
`top_k_accuracy_score` (ties go to the higher index).
When k is at least the number of classes, every sample is correct (top-k accuracy is 1.0).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per-sample class scores (logits or probabilities), shape (n, m).
    references (`list` of `int`): per-sample true class in [0, m), shape (n,).
    k (`int` or `list` of `int`, *optional*, defaults to `[1, 5]`): the values of k to report.

Returns:
    `dict`: `top{k}_accuracy` (`float` in [0, 1]) for each k.

Examples:
    >>> from hf_mentornet.metrics import load_metric
    >>> metric = load_metric("top_k_accuracy")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]], references=[2, 0], k=[1, 2])
    {'top1_accuracy': 0.5, 'top2_accuracy': 1.0}
"""

_CITATION = """
@inproceedings{jiang2018mentornet,
  title={MentorNet: Learning Data-Driven Curriculum for Very Deep Neural Networks on Corrupted Labels},
  author={Jiang, Lu and Zhou, Zhengyuan and Leung, Thomas and Li, Li-Jia and Fei-Fei, Li},
  booktitle={ICML},
  year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.List(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k=(1, 5)) -> dict[str, float]:
        scores = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.int64)
        ks = [k] if isinstance(k, int) else list(k)
        if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
            raise ValueError(
                f"`references` must be class indices in [0, {scores.shape[1]}) (the number of score columns); "
                f"got values in [{labels.min()}, {labels.max()}]."
            )
        if any(value < 1 for value in ks):
            raise ValueError(f"`k`={k!r}: every k must be a positive integer, e.g. k=[1, 5].")
        return {f"top{value}_accuracy": _top_k_accuracy(labels, scores, value) for value in ks}


def _top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    # scikit-learn's top-k reads a 2-column score as a binary problem with a threshold, and warns for k >= the
    # number of classes: top-1 is the argmax accuracy, and every label is within the top k of k classes.
    if k == 1:
        return float(accuracy_score(labels, scores.argmax(axis=1)))
    if k >= scores.shape[1]:
        return 1.0
    return float(top_k_accuracy_score(labels, scores, k=k, labels=np.arange(scores.shape[1])))
