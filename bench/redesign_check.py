"""The redesign (issue 21) changes the layout, not the behaviour: the same benchmark runs from the new layout against
the committed ones and against the code before the redesign, run again on this machine.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py --output_dir bench/results/redesign_check/new \
        --regimes noreg --noise_rates 0.4 --seeds 0 --methods mentornet-dd --threads 1 &
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py --output_dir bench/results/redesign_check/new \
        --regimes noreg --noise_rates 0.4 --seeds 0 --methods co-teaching --threads 1 &
    # the code before the redesign (commit 4b83791), in a worktree beside this one:
    git worktree add /tmp/before 4b83791 && cd /tmp/before && OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=. \
        python bench/noisy_cifar.py --data <repo>/../shared/data/cifar10 --output_dir <repo>/bench/results/redesign_check/before \
        --regimes noreg --noise_rates 0.4 --seeds 0 --methods mentornet-dd --threads 1
    python bench/redesign_check.py

Prints, per run, the last and best clean test accuracy and the first epochs' accuracies of each source.
"""

from __future__ import annotations

import argparse
import json
import os

SOURCES = {
    "committed": "bench/results/noisy_cifar",
    "before the redesign, today": "bench/results/redesign_check/before",
    "new layout, today": "bench/results/redesign_check/new",
}
RUNS = [("noreg", 0.4, "mentornet-dd", 0), ("noreg", 0.4, "co-teaching", 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="How many first epochs to show.")
    cli = parser.parse_args()
    print(f"| run | source | last | best | accuracy after epochs 1-{cli.epochs} |")
    print("|---|---|---|---|---|")
    for regime, noise_rate, method, seed in RUNS:
        for source, folder in SOURCES.items():
            path = os.path.join(folder, regime, f"noise-{noise_rate:g}", method, f"seed-{seed}", "run.json")
            if not os.path.isfile(path):
                continue
            with open(path) as file:
                run = json.load(file)
            first = " ".join(f"{accuracy:.4f}" for accuracy in run["accuracy_per_epoch"][: cli.epochs])
            print(
                f"| {regime} p={noise_rate:g} {method} seed {seed} | {source} | {run['last_accuracy']:.4f} | "
                f"{run['best_accuracy']:.4f} | {first} |"
            )


if __name__ == "__main__":
    main()
