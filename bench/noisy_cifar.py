"""Noisy CIFAR-10 on a CPU: MentorNet against the paper's baselines (issue 6; the paper's Sec. 5.1 / Table 2
protocol, scaled down).

A 20,000-image subset of the CIFAR-10 training set (a fixed seeded draw) gets symmetric label noise with the paper's
protocol (`uniform`: each label replaced with probability p by a uniformly drawn class, Zhang et al., 2017) at
p = 0.2, 0.4, 0.8; a small ResNet-style student (~0.5M parameters, channels_last, bf16 autocast with `--bf16`) is
trained from scratch with every method through `hf_mentornet.experiment.run_experiment`, and its clean accuracy on
the full 10,000-image test set is measured after every epoch. Two regimes, as the paper's FullModel and NoReg:

- `full`: augmentation (pad 4, random crop, flip) + weight decay 2e-4 (scaled by the batch's mean weight,
  Appendix E.3), 40 epochs;
- `noreg`: no augmentation, no weight decay, 30 epochs.

Both: batch 128, momentum SGD 0.9, lr 0.1 x0.1 at 50%, 64.1% and 76.9% of training (the paper's steps 19.5k, 25k,
30k of 39k). Methods: plain (FullModel / NoReg), forgetting (dropout `--forgetting_drop_rate` before the classifier;
the paper tunes 0.2-0.9), self-paced, focal, reed-soft, reed-hard, s-model, co-teaching, mentornet-pd,
mentornet-dd and oracle (trained on the uncorrupted samples only: the ceiling of a perfect curriculum). The
baselines' parameters are fixed, not tuned as in the paper: `--focal_gamma 2`, `--reed_beta 0.8`,
`--self_paced_percentile 0.5`, co-teaching's forget rate = the corrupted fraction, T_k = 10 epochs.

Reported: last and best clean test accuracy (mean over seeds) and the gap share
`(method - plain) / (oracle - plain)` on the last-epoch accuracy: the part of the distance to the oracle a method
closes (1 = as good as a perfect curriculum, 0 = no better than plain training, negative = worse). Every run writes
`<output_dir>/<regime>/noise-<p>/<method>/seed-<s>/run.json`; a run whose JSON exists is skipped (resumable).

Full matrix (hours: 2 regimes x 3 noise rates x 11 methods per seed; see the report for a timing), from the
repository root:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py \\
        --output_dir runs/noisy_cifar --seeds 0 1 2 --threads 1

Smoke configuration (about 2 minutes):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py --output_dir /tmp/noisy_cifar_smoke \\
        --train_subset 500 --epochs 1 --methods plain oracle focal --noise_rates 0.4 --seeds 0 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging

from hf_mentornet.experiment import run_experiment
from hf_mentornet.training_args import MentorNetTrainingArguments

METHODS = [
    "plain",
    "forgetting",
    "self-paced",
    "focal",
    "reed-soft",
    "reed-hard",
    "s-model",
    "co-teaching",
    "mentornet-pd",
    "mentornet-dd",
    "oracle",
]
REGIMES = {
    "full": {"epochs": 40, "augmentation": True, "weight_decay": 2e-4},
    "noreg": {"epochs": 30, "augmentation": False, "weight_decay": 0.0},
}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class SmallResNetConfig(PretrainedConfig):
    model_type = "bench-small-resnet"

    def __init__(
        self, widths: tuple[int, ...] = (32, 64, 128), depths: tuple[int, ...] = (1, 1, 2), drop_rate: float = 0.0,
        num_channels: int = 3, **kwargs,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.widths, self.depths, self.drop_rate, self.num_channels = (
            list(widths),
            list(depths),
            drop_rate,
            num_channels,
        )


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(PreTrainedModel):
    """A CIFAR ResNet (3x3 stem, three stages of basic blocks, stride 2 between stages, global pooling, dropout,
    linear), ~0.6M parameters by default. A transformers model built from a config, so `run_experiment` gives it
    the plain CIFAR transforms (no augmentation unless asked)."""

    config_class = SmallResNetConfig
    main_input_name = "pixel_values"

    def __init__(self, config: SmallResNetConfig) -> None:
        super().__init__(config)
        widths = config.widths
        self.stem = nn.Sequential(
            nn.Conv2d(config.num_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        blocks, in_channels = [], widths[0]
        for stage, (width, depth) in enumerate(zip(widths, config.depths, strict=True)):
            for index in range(depth):
                blocks.append(BasicBlock(in_channels, width, 2 if stage > 0 and index == 0 else 1))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.drop_rate)
        self.classifier = nn.Linear(in_channels, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Keep PyTorch's default (Kaiming-uniform) initialisation of the layers.
        pass

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> ImageClassifierOutput:
        x = self.blocks(self.stem(pixel_values.contiguous(memory_format=torch.channels_last)))
        return ImageClassifierOutput(logits=self.classifier(self.dropout(x.mean(dim=(2, 3)))))


def load_cifar(path: str, train_subset: int) -> datasets.DatasetDict:
    dataset = datasets.load_dataset(path)
    if train_subset:
        dataset["train"] = dataset["train"].shuffle(seed=0).select(range(train_subset)).flatten_indices()
    return dataset


def run_one(dataset, cli, regime: str, noise_rate: float, method: str, seed: int) -> dict:
    settings = REGIMES[regime]
    epochs = cli.epochs or settings["epochs"]
    run_dir = os.path.join(cli.output_dir, regime, f"noise-{noise_rate:g}", method, f"seed-{seed}")
    drop_rate = cli.forgetting_drop_rate if method == "forgetting" else 0.0

    def student_factory() -> nn.Module:
        config = SmallResNetConfig(num_labels=10, drop_rate=drop_rate)
        return SmallResNet(config).to(memory_format=torch.channels_last)

    args = MentorNetTrainingArguments(
        output_dir=run_dir,
        per_device_train_batch_size=cli.batch_size,
        per_device_eval_batch_size=500,
        num_train_epochs=epochs,
        learning_rate=0.1,
        optim="sgd",
        optim_args="momentum=0.9",
        weight_decay=settings["weight_decay"],
        scale_weight_decay_by_mean_weight=settings["weight_decay"] > 0,
        lr_decay_at=[0.5, 0.641, 0.769],
        lr_decay_factor=0.1,
        logging_steps=50,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=cli.bf16,
        seed=seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
        focal_gamma=cli.focal_gamma,
        reed_beta=cli.reed_beta,
        self_paced_percentile=cli.self_paced_percentile,
    )
    start = time.perf_counter()
    result, trainer = run_experiment(
        dataset,
        student_factory,
        method,
        args,
        noise_rate=noise_rate,
        noise_type="uniform",
        noise_seed=seed,
        image_column="img",
        label_column="label",
        cifar_augmentation=settings["augmentation"],
        transform_kwargs={"mean": CIFAR_MEAN, "std": CIFAR_STD},
    )
    record = {
        **result.__dict__,
        "regime": regime,
        "noise_rate": noise_rate,
        "seed": seed,
        "epochs": epochs,
        "train_size": len(trainer.train_dataset),
        "student_parameters": sum(p.numel() for p in student_factory().parameters()),
        "wall_seconds": time.perf_counter() - start,
    }
    path = os.path.join(run_dir, "run.json")
    with open(path + ".tmp", "w") as file:
        json.dump(record, file, indent=2)
    os.replace(path + ".tmp", path)
    return record


def tables(records: list[dict], methods: list[str], noise_rates: list[float]) -> str:
    """Markdown: per regime, last (best) accuracy and the gap share per method and noise rate, means over seeds."""
    lines = []
    for regime in dict.fromkeys(record["regime"] for record in records):
        by_key: dict[tuple[str, float], dict[int, dict]] = {}
        for record in records:
            if record["regime"] == regime:
                by_key.setdefault((record["method"], record["noise_rate"]), {})[record["seed"]] = record
        header = " | ".join(f"p={rate:g} last (best) | gap share" for rate in noise_rates)
        lines += [f"\n### {regime}\n", f"| method | {header} |", "|---" * (1 + 2 * len(noise_rates)) + "|"]
        for method in methods:
            cells = []
            for rate in noise_rates:
                runs = by_key.get((method, rate), {})
                if not runs:
                    cells += ["-", "-"]
                    continue
                last = np.mean([run["last_accuracy"] for run in runs.values()])
                best = np.mean([run["best_accuracy"] for run in runs.values()])
                shares = []
                for seed, run in runs.items():
                    plain = by_key.get(("plain", rate), {}).get(seed)
                    oracle = by_key.get(("oracle", rate), {}).get(seed)
                    if plain and oracle and oracle["last_accuracy"] != plain["last_accuracy"]:
                        gap = oracle["last_accuracy"] - plain["last_accuracy"]
                        shares.append((run["last_accuracy"] - plain["last_accuracy"]) / gap)
                share = f"{np.mean(shares):+.2f}" if shares else "-"
                cells += [f"{last:.3f} ({best:.3f})", share]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../shared/data/cifar10"))
    parser.add_argument("--output_dir", default="runs/noisy_cifar")
    parser.add_argument("--train_subset", type=int, default=20_000)
    parser.add_argument("--noise_rates", type=float, nargs="+", default=[0.2, 0.4, 0.8])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="Override the regimes' epochs (40 / 30).")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--forgetting_drop_rate", type=float, default=0.5)
    parser.add_argument("--focal_gamma", type=float, default=2.0)
    parser.add_argument("--reed_beta", type=float, default=0.8)
    parser.add_argument("--self_paced_percentile", type=float, default=0.5)
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    logging.set_verbosity_error()
    dataset = load_cifar(cli.data, cli.train_subset)

    records = []
    start = time.perf_counter()
    for seed in cli.seeds:
        for regime in cli.regimes:
            for noise_rate in cli.noise_rates:
                for method in cli.methods:
                    path = os.path.join(cli.output_dir, regime, f"noise-{noise_rate:g}", method, f"seed-{seed}")
                    if os.path.isfile(os.path.join(path, "run.json")):
                        with open(os.path.join(path, "run.json")) as file:
                            records.append(json.load(file))
                        continue
                    record = run_one(dataset, cli, regime, noise_rate, method, seed)
                    records.append(record)
                    print(
                        f"{regime} p={noise_rate:g} {method} seed {seed}: last {record['last_accuracy']:.4f} best "
                        f"{record['best_accuracy']:.4f} ({record['train_seconds']:.0f} s training, "
                        f"{record['wall_seconds']:.0f} s in all)",
                        flush=True,
                    )
    print(tables(records, cli.methods, cli.noise_rates))
    params = records[0]["student_parameters"] if records else math.nan
    print(f"\n{len(records)} runs, student {params:,} parameters, {time.perf_counter() - start:.0f} s this call.")


if __name__ == "__main__":
    main()
