"""Why a curriculum update (Algorithm 1 step 6) hurts the NoReg student at 40% noise: one short run that shows it.

`bench/noisy_cifar.py`'s NoReg DD run with `curriculum_update_at = [0.21, 0.75]` ends below plain training (0.398 vs
0.425 at 40%; 0.536 without updates) and the corrupted samples' weight rises from ~0.2 to 0.55-0.70 after the first
update. This script reproduces the first update in a shorter run: the same data (20,000 CIFAR-10 images, 40% uniform
noise, seed 0), student, NoReg protocol and shipped DD, for 8 epochs at a constant lr 0.1 (the 30-epoch run is still
at lr 0.1 at its first update), with one update at 79% of training (epoch 6.3, where the 30-epoch run's 21% is), on
2,000 training samples with their clean labels (the paper's D'). It prints:

- per tenth of training: the median training loss of the clean and of the corrupted samples and their mean weight;
- the update's fit (held-out AUROC on D');
- the weight the shipped DD and the re-learned MentorNet give a loss, at the training loss percentile the moving
  average has just before the update (the epoch feature is the burn-in epoch, as the trainer asks), beside an
  alternative re-fit not in the trainer: the same fit on the training losses of `--update_size` random samples over
  the whole run up to the update (one record per sample per tenth of training), instead of one snapshot; and the
  share of clean labels among the training samples at each loss in the tenth of training before the update, which
  is what the re-fit learns to predict.

One single-thread process, ~8 minutes here:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/curriculum_update.py --output_dir /tmp/curriculum_update
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import noisy_cifar  # noqa: E402  (the benchmark's data, student and protocol; it puts recipes/ on the path)
from recipe_helpers import run_experiment  # noqa: E402

from hf_mentornet import load_curriculum  # noqa: E402
from hf_mentornet.learning import learn_from_records  # noqa: E402

LOSSES = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/cifar10")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--noise_rate", type=float, default=0.4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--update_at", type=float, default=0.79)
    parser.add_argument("--update_size", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)

    protocol = argparse.Namespace(batch_size=128, epochs=cli.epochs, bf16=False, focal_gamma=2.0, reed_beta=0.8,
                                  self_paced_percentile=0.5)  # fmt: skip
    args = noisy_cifar.training_settings(
        protocol, "noreg", "mentornet-dd", cli.output_dir, cli.seed,
        lr_decay_at=[], lr_scheduler_type="constant", curriculum_update_at=[cli.update_at], record_student=True,
    )  # fmt: skip
    dataset = noisy_cifar.load_cifar(cli.data, 20_000)
    shipped = load_curriculum("mentornet-dd").eval()
    _, trainer = run_experiment(
        dataset,
        noisy_cifar.student_factory(),
        "mentornet-dd",
        args,
        noise_rate=cli.noise_rate,
        noise_type="uniform",
        noise_seed=cli.seed,
        image_column="img",
        label_column="label",
        cifar_augmentation=False,
        transform_kwargs={"mean": noisy_cifar.CIFAR_MEAN, "std": noisy_cifar.CIFAR_STD},
        curriculum_update_size=cli.update_size,
    )
    records = trainer.student_records().to_pandas()
    records["corrupted"] = records["label"] != records["clean_label"]
    update = next(entry for entry in trainer.state.log_history if "mentornet/update_heldout_auroc" in entry)
    update_epoch = int(100 * update["step"] // trainer.state.max_steps)

    print(f"Update at step {update['step']} (progress {update_epoch}%): held-out AUROC of the re-fit on D' "
          f"{update['mentornet/update_heldout_auroc']:.3f}\n")  # fmt: skip
    print("| progress | median loss clean | median loss corrupted | mean weight clean | mean weight corrupted |")
    print("|---|---|---|---|---|")
    for start in range(0, 100, 10):
        rows = records[(records["epoch"] >= start) & (records["epoch"] < start + 10)]
        clean, corrupted = rows[~rows["corrupted"]], rows[rows["corrupted"]]
        print(f"| {start}-{start + 9}% | {clean['loss'].median():.2f} | {corrupted['loss'].median():.2f} | "
              f"{clean['weight'].mean():.2f} | {corrupted['weight'].mean():.2f} |")  # fmt: skip

    # The moving average tracks the batch percentile; just before the update it sits near the last progress
    # percent's percentile of the training losses.
    before = records[records["epoch"] == update_epoch - 1]["loss"]
    moving_average = float(np.quantile(before, trainer.args.loss_p_percentile))
    loss = torch.tensor(LOSSES)
    epoch = trainer._mentornet_epoch(update_epoch)

    history = records[records["epoch"] < update_epoch]
    samples = np.random.default_rng(cli.seed).choice(history["sample_index"].unique(), cli.update_size, replace=False)
    history = history[history["sample_index"].isin(samples)]
    history = history.groupby(["sample_index", history["epoch"] // 10]).head(1)
    over_run, _ = learn_from_records(
        {
            "sample_index": history["sample_index"].to_numpy(),
            "epoch": np.full(len(history), epoch),
            "label": history["label"].to_numpy(),
            "clean_label": history["clean_label"].to_numpy(),
            "loss": history["loss"].to_numpy(),
        },
        curriculum_name="mentornet-dd",
        max_steps=args.curriculum_update_steps,
        seed=cli.seed,
        init_model=shipped,
    )
    # What the update is asked to fit: among the training samples' last records in the tenth of training before the
    # update (D' is a random tenth of them), the share whose label is clean at each loss.
    recent = records[(records["epoch"] >= update_epoch - 10) & (records["epoch"] < update_epoch)]
    recent = recent.groupby("sample_index").tail(1)
    share_clean = [
        (~recent["corrupted"][(recent["loss"] >= value - 0.5) & (recent["loss"] < value + 0.5)]).mean()
        for value in LOSSES
    ]
    mentornets = {
        "shipped DD (before)": shipped,
        "re-learned (after)": trainer.curriculum.cpu(),
        "re-fit on the run's records (alternative)": over_run.eval(),
    }
    with torch.no_grad():
        weights = {
            name: mentornet(loss=loss, loss_diff=loss - moving_average, epoch=epoch).weights
            for name, mentornet in mentornets.items()
        }
    print(f"\nWeight given to a loss (loss_diff = loss - {moving_average:.2f}, the {trainer.args.loss_p_percentile:g} "
          f"quantile of the training losses just before the update; epoch feature {epoch}):\n")  # fmt: skip
    print("| MentorNet | " + " | ".join(f"loss {value:g}" for value in LOSSES) + " |")
    print("|---|" + "---|" * len(LOSSES))
    for name, values in weights.items():
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in values.tolist()) + " |")
    print("| share of clean labels at this loss (+-0.5), the tenth before the update | "
          + " | ".join(f"{value:.2f}" for value in share_clean) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
