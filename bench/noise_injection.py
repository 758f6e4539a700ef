"""Throughput and realised rates of `hf_mentornet.noise.inject_label_noise`.

Run from the repository root:

    HF_HUB_OFFLINE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 python bench/noise_injection.py

It builds a 2.4M-row dataset with 1,000 classes (WebVision's size), once with a plain integer label column and once
with a `ClassLabel`, times every noise type on it, and measures the realised rates on the embedded MNIST (5,000
real images, 4,000 in the train split). The table is markdown, for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features

from hf_mentornet.data import load_embedded_dataset
from hf_mentornet.noise import inject_label_noise, noise_report


def transition_matrix(m: int, seed: int) -> np.ndarray:
    """A random row-stochastic matrix: each row keeps its class or goes to one of 3 random others."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((m, m))
    for c in range(m):
        others = rng.choice(np.delete(np.arange(m), c), size=3, replace=False)
        matrix[c, c] = 0.4
        matrix[c, others] = 0.2
    return matrix


def expected_changed(noise_type: str, rate: float, m: int, matrix: np.ndarray) -> float:
    """The expected fraction of changed labels with balanced classes."""
    return {
        "uniform": rate * (m - 1) / m,
        "symmetric": rate,
        "pair": rate,
        "transition": rate * float(np.mean(1 - np.diag(matrix))),
    }[noise_type]


def bench(dataset: Dataset, name: str, m: int, rate: float, seed: int, rows: list[str]) -> None:
    matrix = transition_matrix(m, seed)
    for noise_type in ("uniform", "symmetric", "pair", "transition"):
        kwargs = {"transition_matrix": matrix} if noise_type == "transition" else {}
        start = time.perf_counter()
        out = inject_label_noise(dataset, rate, noise_type, seed=seed, num_classes=m, **kwargs)
        seconds = time.perf_counter() - start
        realised = noise_report(out, num_classes=m)["noise_rate"]
        rows.append(
            f"| {name} | {len(dataset):,} | {m} | {noise_type} | {rate} | "
            f"{expected_changed(noise_type, rate, m, matrix):.4f} | {realised:.4f} | {seconds:.2f} | "
            f"{len(dataset) / seconds:,.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_400_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels = np.random.default_rng(args.seed).integers(0, args.classes, args.rows)
    integer = Dataset.from_dict({"label": labels})
    class_label = integer.cast(Features({"label": ClassLabel(num_classes=args.classes)}))
    mnist = load_embedded_dataset("mnist", seed=args.seed)["train"]

    rows = [
        "| dataset | rows | classes | noise type | requested p | expected changed | realised changed | seconds | rows/s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    bench(integer, "synthetic, int64 labels", args.classes, args.rate, args.seed, rows)
    bench(class_label, "synthetic, ClassLabel", args.classes, args.rate, args.seed, rows)
    bench(mnist, "embedded MNIST train", 10, args.rate, args.seed, rows)

    print(
        f"seed {args.seed}; {platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}; expected changed = p (m - 1) / m for uniform, p for symmetric "
        "and pair, p * mean(1 - T[c, c]) for transition (T: keep 0.4, 3 random others 0.2 each); seconds include "
        "adding the columns, not the noise report\n"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
