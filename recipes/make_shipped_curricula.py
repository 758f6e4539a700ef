"""Learn the curricula that ship with hf_mentornet and write them to `hf_mentornet/pretrained/<name>/`
(config.json, model.safetensors, README.md), or check the shipped predefined ones, or copy the DDs the bench re-learned.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python recipes/make_shipped_curricula.py --cifar10 ../shared/data/cifar10
    HF_HUB_OFFLINE=1 python recipes/make_shipped_curricula.py --check
    HF_HUB_OFFLINE=1 python recipes/make_shipped_curricula.py --dd_runs bench/results/noisy_cifar

All use the released architecture (hidden size 1, one step, so any trainer can use them) with a trained epoch
embedding, and are learned with `learn_predefined`'s defaults and seed 0. Each directory is written to a temporary
directory beside it and moved into place, so an interrupted run never leaves a half-written curriculum.

The data-driven ones come in two generations:
- `mentornet-dd` (40%, the default), `mentornet-dd-0.2` and `mentornet-dd-0.8` (used with the 50th loss percentile,
  as the authors' released 80% command), the first release's: learned from students' records by
  `recipes/train_mentornet.py --source student` on 5,000 CIFAR-10 training images (`--cifar10`: a Hub id or a local
  copy; about 6 minutes each on one CPU thread), one per noise rate as the paper does. `--dd_runs` leaves them as
  they are.
- `mentornet-dd-<regime>-<rate>` for the bench's regimes `full` and `noreg` at 20 / 40 / 80%: re-learned on-policy
  (Algorithm 1 with the paper's D'), each the curriculum that `bench/noisy_cifar.py`'s `mentornet-dd-onpolicy` run
  learned from its 604k student at the end of burn-in, seed 0. `--dd_runs DIR` copies them from that bench's output
  directory (run the cells first: `python bench/noisy_cifar.py --output_dir DIR --regimes full noreg --noise_rates
  0.2 0.4 0.8 --seeds 0 --methods mentornet-dd-onpolicy --threads 1`, 20-30 minutes a run), renamed, with a note
  of where they came from on their card.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging

from hf_mentornet import MentorNetConfig, MentorNetModel
from hf_mentornet.configuration_mentornet import PD_DROPOUT_SCHEDULE
from hf_mentornet.hub import SHIPPED_CURRICULA_DIR, save_curriculum
from hf_mentornet.learning import curriculum_mse, learn_predefined

SEED = 0
# A shipped curriculum passes `--check` when its MSE on fresh grid points stays within this of its recorded test MSE.
CHECK_FACTOR, CHECK_MARGIN = 10.0, 1e-4

# name -> (curriculum, its parameters, training settings recommended with it, note for the card)
SHIPPED: dict[str, tuple[str, dict[str, Any], dict[str, Any], str | None]] = {
    "mentornet-pd": (
        "mentornet-pd",
        {"burn_in_epoch": 18, "linear_from_epoch": 90, "gamma": 1.0},
        {
            "loss_p_percentile": 0.75,
            "loss_moving_average_decay": 0.95,
            "burn_in_fraction": 0.2,
            "example_dropout_schedule": PD_DROPOUT_SCHEDULE,
        },
        "Training settings follow the paper (burn-in 20%, moving-average decay 0.95, App. E.3); the authors' "
        "released PD command used burn-in 0 (burn_in_epoch=0), the flag default decay 0.5, p = 0.75 and the same "
        "example-dropout schedule 0.5 for 17% then 0.05 for 83%.",
    ),
    "self-paced": ("self-paced", {}, {}, None),
    "spcl-linear": ("spcl-linear", {"gamma": 1.0}, {}, None),
    "hard-example-mining": ("hard-example-mining", {}, {}, None),
    "focal": ("focal", {"gamma": 2.0}, {}, None),
    "baseline": ("baseline", {}, {"burn_in_fraction": 0.0, "example_dropout_schedule": None}, None),
}


# name -> (noise rate of the students' data, loss percentile the curriculum is used with)
DATA_DRIVEN: dict[str, tuple[float, float]] = {
    "mentornet-dd": (0.4, 0.75),
    "mentornet-dd-0.2": (0.2, 0.75),
    "mentornet-dd-0.8": (0.8, 0.5),
}

# The re-learned DDs: name -> (bench regime, noise rate) of the `mentornet-dd-onpolicy` run they come from.
RELEARNED: dict[str, tuple[str, float]] = {
    f"mentornet-dd-{regime}-{rate:g}": (regime, rate) for regime in ("full", "noreg") for rate in (0.2, 0.4, 0.8)
}
RELEARNED_SEED = 0
# The regimes, for the cards (recipes/configs/cifar.yaml with cifar_cpu_<regime>.yaml over it).
RELEARNED_NOTES = {
    "full": "bench's `full` regime: 40 epochs with the paper's augmentation and weight decay 2e-4",
    "noreg": "bench's `noreg` regime, the paper's NoReg: 30 epochs, no augmentation, no weight decay",
}


def copy_relearned(name: str, dd_runs: Path) -> tuple[MentorNetConfig, float]:
    """Copy the curriculum learned by the bench's `mentornet-dd-onpolicy` run of `name`'s regime and rate (seed 0)
    from `dd_runs` to `SHIPPED_CURRICULA_DIR / name`, renamed, with where it came from in its card. Returns its
    config and that run's last test accuracy."""
    regime, rate = RELEARNED[name]
    run = dd_runs / regime / f"noise-{rate:g}" / "mentornet-dd-onpolicy" / f"seed-{RELEARNED_SEED}"
    if not (run / "curriculum" / "config.json").is_file():
        raise FileNotFoundError(
            f"`--dd_runs`={str(dd_runs)!r} has no learned curriculum at {run / 'curriculum'}: run the cell first "
            f"(python bench/noisy_cifar.py --output_dir {dd_runs} --regimes {regime} --noise_rates {rate:g} "
            f"--seeds {RELEARNED_SEED} --methods mentornet-dd-onpolicy --threads 1)."
        )
    model = MentorNetModel.from_pretrained(run / "curriculum")
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    learned = model.config.learned_from
    model.config.curriculum_name = model.config.name_or_path = name
    learned["source_dataset"] = "uoft-cs/cifar10"  # the bench's copy of it
    learned["notes"] = (
        f"Learned on-policy by `bench/noisy_cifar.py --methods mentornet-dd-onpolicy`, seed {RELEARNED_SEED}, in the "
        f"{RELEARNED_NOTES[regime]}; {learned['train_images']} CIFAR-10 training images at {rate:g} uniform noise. "
        f"Learned at the end of burn-in (step {learned['student_step']}), from the 604k-parameter bench student's served "
        f"features on {learned['trusted_images']} trusted rows, with the percentile p = "
        f"{model.config.loss_p_percentile:g} chosen on them. That run ended at last test accuracy "
        f"{record['last_accuracy']:.4f}; bench/RESULTS.md compares it with the first release's DD, PD and "
        "co-teaching in the same cell."
    )
    save_curriculum(model, SHIPPED_CURRICULA_DIR / name, model_id=name, overwrite=True)
    return model.config, record["last_accuracy"]


def make(name: str) -> dict[str, Any]:
    """Learn the shipped curriculum `name` and write it atomically to `SHIPPED_CURRICULA_DIR / name`."""
    curriculum, params, settings, note = SHIPPED[name]
    config = MentorNetConfig(trainable_epoch_embedding=True, **settings)
    model, metrics = learn_predefined(curriculum, params, config, seed=SEED)
    model.config.name_or_path = name
    if note:
        model.config.learned_from["notes"] = note
    save_curriculum(model, SHIPPED_CURRICULA_DIR / name, model_id=name, overwrite=True)
    return metrics


def check(name: str) -> tuple[bool, str]:
    """Load a shipped curriculum by name and compare it with its card and its predefined curriculum."""
    model = MentorNetModel.from_pretrained(name)
    config = model.config
    card = (SHIPPED_CURRICULA_DIR / name / "README.md").read_text(encoding="utf-8")
    recorded = config.learned_from["test_mse"]
    mse = curriculum_mse(model)
    problems = []
    if f"- Name: `{config.curriculum_name}`" not in card:
        problems.append(f"card does not name the curriculum {config.curriculum_name!r}")
    if f"- test_mse: {recorded:.4g}" not in card:
        problems.append(f"card does not state the recorded test MSE {recorded:.4g}")
    if mse > CHECK_FACTOR * recorded + CHECK_MARGIN:
        problems.append(
            f"MSE {mse:.3g} on fresh grid points exceeds {CHECK_FACTOR:g} x {recorded:.3g} + {CHECK_MARGIN}"
        )
    return not problems, f"{name}: MSE {mse:.2e} (recorded {recorded:.2e})" + "".join(f"; {p}" for p in problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "names", nargs="*", default=[*SHIPPED, *DATA_DRIVEN], help=f"default: all of {[*SHIPPED, *DATA_DRIVEN]}"
    )
    parser.add_argument("--cifar10", default="uoft-cs/cifar10", help="CIFAR-10 for mentornet-dd: Hub id or path")
    parser.add_argument("--check", action="store_true", help="check the shipped curricula instead of making them")
    parser.add_argument(
        "--dd_runs",
        type=Path,
        default=None,
        help="bench/noisy_cifar.py's output directory: copy all six re-learned DDs from its mentornet-dd-onpolicy runs "
        "(seed 0) and nothing else",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable_progress_bar()
    if args.dd_runs is not None:
        print("| Curriculum | p | Held-out selection quality | Its run's last accuracy |\n|---|---|---|---|")
        for name in RELEARNED:
            config, accuracy = copy_relearned(name, args.dd_runs)
            quality = config.learned_from["heldout_selection_quality"]
            print(f"| {name} | {config.loss_p_percentile:g} | {quality:.3f} | {accuracy:.4f} |")
        return
    unknown = sorted(set(args.names) - {*SHIPPED, *DATA_DRIVEN})
    if unknown:
        parser.error(f"unknown names {unknown}; choose from {[*SHIPPED, *DATA_DRIVEN]}")
    if args.check:
        results = [check(name) for name in args.names if name in SHIPPED]
        print("\n".join(message for _, message in results))
        raise SystemExit(0 if all(ok for ok, _ in results) else 1)
    print("| Curriculum | Test MSE | Steps | Seconds |\n|---|---|---|---|")
    for name in args.names:
        if name in SHIPPED:
            metrics = make(name)
            print(f"| {name} | {metrics['test_mse']:.2e} | {metrics['steps']} | {metrics['seconds']} |", flush=True)
    for name in args.names:
        if name in DATA_DRIVEN:
            noise_rate, percentile = DATA_DRIVEN[name]
            # Seeded like the others (train_mentornet.py's --seed defaults to 0).
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).with_name("train_mentornet.py")),
                    "--source",
                    "student",
                    "--dataset",
                    args.cifar10,
                    "--noise_rates",
                    str(noise_rate),
                    "--loss_p_percentile",
                    str(percentile),
                    # The shipped DDs were learned with the released code's loss_diff reference; the paper's
                    # per-epoch one gives the same held-out AUROC on these records (0.793 at 40%, bench/RESULTS.md).
                    "--loss_diff_reference",
                    "all",
                    "--output_dir",
                    str(SHIPPED_CURRICULA_DIR / name),
                    "--hub_model_id",
                    name,
                ],  # fmt: skip
                check=True,
            )


if __name__ == "__main__":
    main()
