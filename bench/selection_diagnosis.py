"""What the curricula removed in `bench/noisy_cifar.py`'s runs: memorised corrupted labels, or clean samples.

A curriculum can only help if plain training fits the corrupted labels. For every finished run that ranked label
issues (plain, MentorNet PD / DD and their variants), this script reads the run's `label_issues.csv` (the final
student's prediction on every training sample and the sample's mean weight over the second half of training) and the
clean labels (the same noise draw), and prints per regime and noise rate:

- `clean fitted`: the share of uncorrupted training samples the final student predicts right;
- `corrupted memorised`: the share of corrupted samples it predicts as their wrong given label;
- `memorised among kept`: the same among the corrupted samples the curriculum kept (mean weight > 0.5);
- `clean weight`: the mean weight of the uncorrupted samples, overall and in the class where it is lowest, with the
  share of that class's uncorrupted samples fitted (a curriculum that stops training on a class shows here).

The `label_issues.csv` files are not committed (`.gitignore`): run `bench/noisy_cifar.py` first, then, from the
repository root (~10 seconds; it trains nothing):

    HF_HUB_OFFLINE=1 python bench/selection_diagnosis.py --output_dir bench/results/noisy_cifar
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
import pandas as pd
from noisy_cifar import load_cifar

from hf_mentornet import inject_label_noise


def diagnose(issues: pd.DataFrame, clean_label: np.ndarray, is_noisy: np.ndarray, names: list[str]) -> dict:
    """The row of one run; `clean_label` and `is_noisy` are indexed by `sample_index`."""
    clean_label, is_noisy = clean_label[issues["sample_index"]], is_noisy[issues["sample_index"]]
    predicted, given = issues["predicted_label"].to_numpy(), issues["label"].to_numpy()
    weight = issues["mean_weight"].to_numpy()
    kept_noisy = is_noisy & (weight > 0.5)
    class_weight = [weight[~is_noisy & (clean_label == k)].mean() for k in range(len(names))]
    lowest = int(np.argmin(class_weight))
    in_lowest = ~is_noisy & (clean_label == lowest)
    return {
        "clean fitted": np.mean(predicted[~is_noisy] == given[~is_noisy]),
        "corrupted memorised": np.mean(predicted[is_noisy] == given[is_noisy]),
        "memorised among kept": np.mean(predicted[kept_noisy] == given[kept_noisy]) if kept_noisy.any() else np.nan,
        "clean weight": weight[~is_noisy].mean(),
        "lowest class weight": f"{class_weight[lowest]:.3f} ({names[lowest]})",
        "its clean fitted": np.mean(predicted[in_lowest] == lowest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../shared/data/cifar10"))
    parser.add_argument("--output_dir", default="bench/results/noisy_cifar")
    parser.add_argument("--train_subset", type=int, default=20_000, help="As the runs' (bench/noisy_cifar.py).")
    cli = parser.parse_args()
    # The noise draw depends on the labels, the rate and the seed only: draw it once per (rate, seed), without images.
    labels = load_cifar(cli.data, cli.train_subset)["train"].select_columns(["label"])
    names = labels.features["label"].names
    draws: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = {}
    rows: dict[tuple[str, float], list[dict]] = {}
    for path in sorted(glob.glob(os.path.join(cli.output_dir, "*", "noise-*", "*", "seed-*", "label_issues.csv"))):
        with open(os.path.join(os.path.dirname(path), "run.json")) as file:
            run = json.load(file)
        key = (run["noise_rate"], run["seed"])
        if key not in draws:
            noisy = inject_label_noise(labels, key[0], "uniform", seed=key[1], label_column="label")
            order = np.argsort(noisy["sample_index"])
            draws[key] = np.asarray(noisy["clean_label"])[order], np.asarray(noisy["is_noisy"], dtype=bool)[order]
        row = diagnose(pd.read_csv(path), *draws[key], names)
        rows.setdefault((run["regime"], run["noise_rate"]), []).append(
            {"method": run["method"], "seed": run["seed"], **row}
        )
    for (regime, rate), table in sorted(rows.items()):
        print(f"\n### {regime}, p={rate:g}\n")
        print("| " + " | ".join(table[0]) + " |")
        print("|---" * len(table[0]) + "|")
        for row in table:
            print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
