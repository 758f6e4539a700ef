"""`evaluate` metric modules shipped inside the package, so that recipes compute their metrics offline.

`evaluate.load("accuracy")` fetches the module from the Hub; `load_metric("top_k_accuracy")` loads the module
from this folder, which `evaluate.load` accepts as a local path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import evaluate

__all__ = ["METRICS_DIR", "load_metric", "shipped_metrics"]

METRICS_DIR = Path(__file__).parent


def shipped_metrics() -> list[str]:
    """Names of the metric modules that ship with the package."""
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load a shipped metric module with `evaluate.load`, without the Hub.

    Args:
        name (`str`): a shipped metric, `"top_k_accuracy"` or `"noisy_label_diagnostics"`.
        kwargs: passed to `evaluate.load`. `keep_in_memory` defaults to `True`: no cache files, so every process of
            a distributed run can compute the metric on the predictions the Trainer gathered, without sharing a
            cache file and its lock.

    Example:
        ```python
        >>> from hf_mentornet.metrics import load_metric
        >>> load_metric("top_k_accuracy").compute(predictions=[[0.2, 0.8]], references=[1], k=[1])
        {'top1_accuracy': 1.0}
        ```
    """
    if name not in shipped_metrics():
        raise ValueError(
            f"`name`={name!r} is not a shipped metric; choose one of {', '.join(shipped_metrics())}, "
            "or call `evaluate.load` directly for a Hub metric (needs the network)."
        )
    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(METRICS_DIR / name), **kwargs)
