"""Fine-tuning a pretrained student on noisy labels (issue 26): plain fine-tuning against MentorNet PD and DD, with
the curricula's own schedules (made for ~100-epoch training from scratch) and with a fine-tuning schedule given in
epochs.

Pretraining is simulated on CIFAR-10: the bench's small ResNet (`noisy_cifar.SmallResNet`, 604k parameters) is
trained on clean data A, 10,000 images of classes 0-4 (airplane, automobile, bird, cat, deer), 10 epochs, once. It
is then fine-tuned on noisy data B: 5,000 images of classes 5-9 (dog, frog, horse, ship, truck, relabelled 0-4)
with the paper's uniform noise at p = 0.4 (32% of the labels wrong; the noise draw and the new classifier head are
the seed), 8 epochs, batch 128, momentum SGD lr 0.02 cosine, weight decay 5e-4, no augmentation; accuracy on the
5,000 clean test images of classes 5-9 after every epoch. B's images are outside the 5,000 the shipped DD learned
from.

Methods: `plain`; `mentornet-pd` / `mentornet-dd` with their curricula's schedules (PD: burn-in 20%, example
dropout 50% for the first 17%, then 5%; DD: the same burn-in, 50% / 5% / 90% over 17 / 78 / 5%); `+finetune`: the
same curricula with `--burn_in_epochs 1` and no example dropout (`example_dropout_schedule=[[0.0, 1]]` in epochs);
`mentormix+finetune` (MentorMix with the PD curriculum at alpha 8, its default when these runs were made, and the
same schedule in epochs); `oracle` (the uncorrupted samples only: the ceiling). Reported: last and best accuracy per
seed and their mean, and whether a method beats plain fine-tuning in every seed. Each run writes
`<output_dir>/<method>/seed-<s>/run.json` (skipped when it exists).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/fine_tuning.py --output_dir bench/results/fine_tuning \
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import datasets
import numpy as np
import torch
import transformers
from noisy_cifar import CIFAR_MEAN, CIFAR_STD, SmallResNet, SmallResNetConfig, load_cifar, save_run

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "recipes"))
from recipe_helpers import run_experiment  # noqa: E402

from hf_mentornet import inject_label_noise, train_method  # noqa: E402

CIFAR_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10")
FINE_TUNING_SCHEDULE = {
    "burn_in_epochs": 1.0,
    "example_dropout_schedule": [[0.0, 1]],
    "example_dropout_schedule_unit": "epochs",
}
METHODS = {
    "plain": ("plain", {}),
    "mentornet-pd": ("mentornet-pd", {}),
    "mentornet-pd+finetune": ("mentornet-pd", FINE_TUNING_SCHEDULE),
    "mentornet-dd": ("mentornet-dd", {}),
    "mentornet-dd+finetune": ("mentornet-dd", FINE_TUNING_SCHEDULE),
    "mentormix+finetune": ("mentormix", {**FINE_TUNING_SCHEDULE, "mentormix_alpha": 8.0}),
    "oracle": ("oracle", {}),
}
COMMON = {
    "per_device_train_batch_size": 128,
    "per_device_eval_batch_size": 500,
    "optim": "sgd",
    "optim_args": "momentum=0.9",
    "weight_decay": 5e-4,
    "lr_scheduler_type": "cosine",
    "save_strategy": "no",
    "report_to": "none",
    "use_cpu": True,
    "disable_tqdm": True,
    "logging_steps": 10,
}
TRANSFORM = {"image_size": 32, "mean": CIFAR_MEAN, "std": CIFAR_STD}


def class_groups(train_size_a: int, train_size_b: int) -> tuple[datasets.DatasetDict, datasets.DatasetDict]:
    """A: classes 0-4, B: classes 5-9 relabelled 0-4; training images outside those the shipped DD learned from."""
    cifar = load_cifar(CIFAR_PATH, 0)

    def group(split: datasets.Dataset, classes: range, size: int | None) -> datasets.Dataset:
        labels = np.asarray(split["label"])
        rows = np.flatnonzero(np.isin(labels, list(classes)))[:size]
        part = split.select(rows).flatten_indices()
        relabelled = part.map(lambda row: {"label": row["label"] - classes.start}, remove_columns=[])
        return relabelled.cast_column("label", datasets.ClassLabel(num_classes=5))

    a = datasets.DatasetDict(
        {"train": group(cifar["train"], range(0, 5), train_size_a), "test": group(cifar["test"], range(0, 5), 1000)}
    )
    b = datasets.DatasetDict(
        {"train": group(cifar["train"], range(5, 10), train_size_b), "test": group(cifar["test"], range(5, 10), None)}
    )
    return a, b


def pretrain(a: datasets.DatasetDict, output_dir: str, epochs: int) -> str:
    """Train the student on clean A once; return its directory."""
    directory = os.path.join(output_dir, "pretrained")
    if os.path.isfile(os.path.join(directory, "model.safetensors")):
        return directory
    clean = inject_label_noise(a, 0.0)  # the trainers' columns (clean_label, is_noisy, sample_index), no noise

    def scratch() -> torch.nn.Module:
        return SmallResNet(SmallResNetConfig(num_labels=5)).to(memory_format=torch.channels_last)

    settings = {**COMMON, "output_dir": os.path.join(output_dir, "pretraining"), "learning_rate": 0.1}
    summary, trainer = train_method(
        "plain",
        clean,
        scratch,
        {**settings, "num_train_epochs": epochs, "seed": 0},
        image_column="img",
        transform_kwargs=TRANSFORM,
    )
    trainer.model.save_pretrained(directory)
    print(f"pretrained on A: accuracy {summary.last_accuracy:.4f} on A's test images, {summary.train_seconds:.0f} s")
    return directory


def fine_tuned_student(pretrained: str):
    def build() -> torch.nn.Module:
        model = SmallResNet.from_pretrained(pretrained)
        model.classifier.reset_parameters()  # B's classes are new: a fresh head (seeded by the run)
        return model.to(memory_format=torch.channels_last)

    return build


def run_one(b: datasets.DatasetDict, pretrained: str, cli, name: str, seed: int) -> dict:
    run_dir = os.path.join(cli.output_dir, name, f"seed-{seed}")
    path = os.path.join(run_dir, "run.json")
    if os.path.isfile(path):
        with open(path) as file:
            return json.load(file)
    method, overrides = METHODS[name]
    settings = {
        **COMMON,
        "output_dir": run_dir,
        "learning_rate": cli.learning_rate,
        "num_train_epochs": cli.epochs,
        "seed": seed,
        **overrides,
    }
    start = time.perf_counter()
    summary, _ = run_experiment(
        b,
        fine_tuned_student(pretrained),
        method,
        settings,
        noise_rate=cli.noise_rate,
        noise_seed=seed,
        image_column="img",
        transform_kwargs=TRANSFORM,
    )
    record = {**vars(summary), "method": name, "seed": seed, "wall_seconds": time.perf_counter() - start}
    os.makedirs(run_dir, exist_ok=True)
    return save_run(run_dir, record)


def table(records: list[dict], seeds: list[int]) -> str:
    by = {(r["method"], r["seed"]): r for r in records}
    plain = {seed: by[("plain", seed)]["last_accuracy"] for seed in seeds if ("plain", seed) in by}
    lines = [
        "| method | last accuracy per seed | mean last | mean best | mean weight right / wrong | beats plain in every seed |",
        "|---|---|---|---|---|---|",
    ]
    for name in METHODS:
        runs = [by[(name, seed)] for seed in seeds if (name, seed) in by]
        if not runs:
            continue
        last = [r["last_accuracy"] for r in runs]
        compared = [r for r in runs if r["seed"] in plain]  # the seeds plain training ran in this call
        above = all(r["last_accuracy"] > plain[r["seed"]] for r in compared)
        beats = "" if name == "plain" or not compared else ("yes" if above else "no")
        weights = (
            f"{np.mean([r['mean_weight_clean'] for r in runs]):.3f} / {np.mean([r['mean_weight_noisy'] for r in runs]):.3f}"
            if name.startswith("mentor")
            else ""
        )
        lines.append(
            f"| {name} | {' / '.join(f'{v:.4f}' for v in last)} | {np.mean(last):.4f} | "
            f"{np.mean([r['best_accuracy'] for r in runs]):.4f} | {weights} | {beats} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="bench/results/fine_tuning")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--pretrain_size", type=int, default=10_000)
    parser.add_argument("--pretrain_epochs", type=int, default=10)
    parser.add_argument("--train_size", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=0.02)
    parser.add_argument("--noise_rate", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=1)
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    a, b = class_groups(cli.pretrain_size, cli.train_size)
    pretrained = pretrain(a, cli.output_dir, cli.pretrain_epochs)
    records = []
    for seed in cli.seeds:
        for name in cli.methods:
            record = run_one(b, pretrained, cli, name, seed)
            records.append(record)
            print(f"{name} seed {seed}: last {record['last_accuracy']:.4f}, best {record['best_accuracy']:.4f}")
    print(table(records, cli.seeds))


if __name__ == "__main__":
    main()
