"""The metric modules shipped in hf_mentornet/metrics load offline and compute known values."""

import math
import os

import numpy as np
import pytest

from hf_mentornet.metrics import METRICS_DIR, load_metric, shipped_metrics


def test_shipped_metrics_load_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert shipped_metrics() == ["noisy_label_diagnostics", "top_k_accuracy"]
    assert (METRICS_DIR / "top_k_accuracy" / "top_k_accuracy.py").is_file()
    with pytest.raises(ValueError, match="`name`='accuracy'.*top_k_accuracy"):
        load_metric("accuracy")


def test_top_k_accuracy():
    metric = load_metric("top_k_accuracy")
    scores = [[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
    # True classes rank 3rd, 1st, 1st and 2nd.
    result = metric.compute(predictions=scores, references=[0, 0, 2, 1], k=[1, 2, 3, 5])
    assert result == {"top1_accuracy": 0.5, "top2_accuracy": 0.75, "top3_accuracy": 1.0, "top5_accuracy": 1.0}
    # Ties go to the lower class index, as argmax: constant logits are not "always right".
    assert metric.compute(predictions=np.zeros((4, 3)), references=[0, 1, 2, 0], k=1) == {"top1_accuracy": 0.5}
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(200, 10)), rng.integers(0, 10, 200)
    result = metric.compute(predictions=logits, references=labels)
    assert result["top1_accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert result["top5_accuracy"] == pytest.approx(np.mean((top5 == labels[:, None]).any(1)))
    # evaluate checks the input format: class indices (argmax) instead of scores are refused.
    with pytest.raises(ValueError, match="expected format"):
        metric.compute(predictions=[1, 0], references=[1, 1])
    with pytest.raises(ValueError, match=r"`references`.*\[0, 3\)"):
        metric.compute(predictions=scores, references=[0, 0, 3, 1])


def test_noisy_label_diagnostics():
    metric = load_metric("noisy_label_diagnostics")
    result = metric.compute(predictions=[1.0, 0.5, 0.25, 0.75], references=[False, False, True, True])
    assert result == pytest.approx(
        {
            "mean_weight_clean": 0.75,
            "mean_weight_noisy": 0.5,
            "selection_precision": 2 / 3,  # selected: 1.0, 0.5 (clean) and 0.75 (noisy)
            "selection_recall": 1.0,
            "noisy_auroc": 0.75,  # 3 of the 4 (noisy, clean) pairs ranked right by 1 - weight
        }
    )
    strict = metric.compute(predictions=[1.0, 0.5, 0.25, 0.75], references=[False, False, True, True], threshold=0.8)
    assert strict["selection_precision"] == 1.0 and strict["selection_recall"] == 0.5
    clean_only = metric.compute(predictions=[0.9, 0.1], references=[False, False])
    assert math.isnan(clean_only["mean_weight_noisy"]) and math.isnan(clean_only["noisy_auroc"])


def test_metrics_follow_evaluate_conventions():
    """`predictions` / `references`, loadable by path with `evaluate.load`, combinable, and each with a card."""
    import evaluate

    for name in shipped_metrics():
        card = (METRICS_DIR / name / "README.md").read_text()
        assert card.startswith("---\ntitle:") and "## How to Use" in card and "predictions" in card
    diagnostics = evaluate.load(str(METRICS_DIR / "noisy_label_diagnostics"), keep_in_memory=True)
    combined = evaluate.combine([diagnostics])
    weights, noisy = [1.0, 0.5, 0.25, 0.75], [0, 0, 1, 1]
    assert combined.compute(predictions=weights, references=noisy) == pytest.approx(
        diagnostics.compute(predictions=weights, references=noisy), nan_ok=True
    )
    for weight, flag in zip(weights, noisy, strict=True):  # batches as the Trainer's evaluation loop adds them
        diagnostics.add(prediction=weight, reference=flag)
    assert diagnostics.compute()["noisy_auroc"] == 0.75
