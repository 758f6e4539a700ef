"""The benchmark's report (`bench/noisy_cifar.py --report`): what its ordering lines claim from the committed runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import noisy_cifar  # noqa: E402


def runs(lasts: dict[str, list[float]]) -> list[dict]:
    """Bench records at noreg 40%: per method, its last (and best) accuracy in seeds 0, 1, ..."""
    return [
        {
            "method": method,
            "regime": "noreg",
            "noise_rate": 0.4,
            "seed": seed,
            "last_accuracy": last,
            "best_accuracy": last,
        }
        for method, per_seed in lasts.items()
        for seed, last in enumerate(per_seed)
    ]


def test_orderings_name_the_seeds_both_methods_ran_so_one_seed_never_reads_as_every_seed():
    records = runs(
        {"plain": [0.40, 0.41], "oracle": [0.60, 0.61], "mentornet-pd": [0.50, 0.53], "mentornet-dd": [0.55]}
    )
    report = noisy_cifar.tables(records, ["plain", "mentornet-pd", "mentornet-dd", "oracle"], [0.4])

    verdicts = report.split("in every seed both methods ran: ")[1]
    assert "mentornet-dd > mentornet-pd (seed 0)" in verdicts
    assert "mentornet-pd > plain (seeds 0, 1)" in verdicts
    # PD's gap share per seed: (0.50 - 0.40) / (0.60 - 0.40) and (0.53 - 0.41) / (0.61 - 0.41), then their mean
    assert "| +0.55 (+0.50 / +0.60) |" in report


def test_an_ordering_that_fails_in_one_seed_is_not_a_win():
    records = runs({"mentornet-pd": [0.50, 0.52], "co-teaching": [0.49, 0.53], "mentornet-dd": [0.51, 0.53]})
    report = noisy_cifar.tables(records, ["mentornet-pd", "mentornet-dd", "co-teaching"], [0.4])

    assert "mentornet-dd > mentornet-pd (seeds 0, 1)" in report
    assert "mentornet-dd not > co-teaching (seeds 0, 1)" in report
