"""Per-step time of MentorNetTrainer against transformers' Trainer on the same student.

A timm resnet18 (10 classes) on random 3x32x32 images. Both trainers run in one process, in alternating blocks
(plain, MentorNet, plain, MentorNet, ...) so that load from other processes hits both alike; the first step of every
block (data loader start, optimizer creation) is a warm-up and is not timed. The MentorNet side runs the full hot path:
a MentorNet (released architecture), the PD example-dropout schedule, no burn-in, the selection metrics (the batches
carry `clean_label`) and weight decay scaled by the mean weight. On a GPU each step's time ends with a device
synchronisation, so that queued work is counted in its step.

Commands (from the repository root):

    HF_HUB_OFFLINE=1 python bench/overhead.py --blocks 8 --steps 6 --threads 2 --seed 0
    python bench/overhead.py --device cuda --bf16 --batch-size 256 --blocks 6 --steps 30   # bench/device_check.sh
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_mentornet import MentorNetConfig, MentorNetModel
from hf_mentornet.trainer import MentorNetTrainer
from hf_mentornet.training_args import MentorNetTrainingArguments


class Student(nn.Module):
    """timm resnet18 taking `pixel_values`, as both trainers call it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = timm.create_model("resnet18", num_classes=10)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values)


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (from `on_step_begin` to `on_step_end`), the device's queue drained at both
    ends on a GPU."""

    def __init__(self, device: str) -> None:
        self.times: list[float] = []
        self.synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None

    def on_step_begin(self, args, state, control, **kwargs):
        self.synchronize()
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.synchronize()
        self.times.append(time.perf_counter() - self.start)


def random_dataset(num_samples: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(num_samples, 3, 32, 32, generator=generator)
    labels = torch.randint(10, (num_samples,), generator=generator)
    clean = torch.where(torch.rand(num_samples, generator=generator) < 0.6, labels, (labels + 1) % 10)
    return [
        {"pixel_values": images[i], "labels": labels[i], "clean_label": clean[i], "sample_index": torch.tensor(i)}
        for i in range(num_samples)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=8, help="Blocks per trainer (alternating).")
    parser.add_argument("--steps", type=int, default=6, help="Steps per block, the first one untimed.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (both trainers).")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)

    dataset = random_dataset(options.batch_size * options.steps, options.seed)
    output_dir = tempfile.mkdtemp()
    common = {
        "output_dir": output_dir,
        "per_device_train_batch_size": options.batch_size,
        "max_steps": options.steps,
        "learning_rate": 0.01,
        "optim": "sgd",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": options.steps,
        "use_cpu": options.device == "cpu",
        "bf16": options.bf16,
        "seed": options.seed,
        "disable_tqdm": True,
        "weight_decay": 5e-4,
    }
    timers = {"Trainer": StepTimer(options.device), "MentorNetTrainer": StepTimer(options.device)}
    plain = Trainer(
        model=Student(),
        args=TrainingArguments(**common, label_names=["labels"]),
        train_dataset=dataset,
        compute_loss_func=lambda logits, labels, num_items_in_batch=None: F.cross_entropy(logits, labels),
        callbacks=[timers["Trainer"]],
    )
    mentornet = MentorNetTrainer(
        model=Student(),
        args=MentorNetTrainingArguments(
            **common,
            burn_in_fraction=0.0,
            example_dropout_schedule=[[0.5, 17], [0.05, 83]],
            scale_weight_decay_by_mean_weight=True,
        ),
        train_dataset=dataset,
        curriculum=MentorNetModel(MentorNetConfig()),
        callbacks=[timers["MentorNetTrainer"]],
    )
    block_medians = {name: [] for name in timers}
    for _ in range(options.blocks):
        for name, trainer in (("Trainer", plain), ("MentorNetTrainer", mentornet)):
            timers[name].times.clear()
            trainer.train()
            block_medians[name].append(statistics.median(timers[name].times[1:]))

    plain_median = statistics.median(block_medians["Trainer"])
    mentornet_median = statistics.median(block_medians["MentorNetTrainer"])
    paired = statistics.median(
        m / p for m, p in zip(block_medians["MentorNetTrainer"], block_medians["Trainer"], strict=True)
    )
    timed = options.blocks * (options.steps - 1)
    where = torch.cuda.get_device_name() if options.device == "cuda" else f"CPU, {options.threads} threads"
    precision = "bf16" if options.bf16 else "fp32"
    print(f"resnet18 (timm), 3x32x32, batch {options.batch_size}, {precision}, {where}, seed {options.seed}")
    print(f"{options.blocks} alternating blocks x {options.steps - 1} timed steps = {timed} steps per trainer\n")
    print("| trainer | median s/step | images/s |")
    print("|---|---|---|")
    for name, median in (("Trainer", plain_median), ("MentorNetTrainer", mentornet_median)):
        print(f"| {name} | {median:.4f} | {options.batch_size / median:.0f} |")
    print(f"\nratio of medians: {mentornet_median / plain_median:.4f}")
    print(f"median of per-block-pair ratios: {paired:.4f}")
    if options.device == "cuda":
        print(f"peak GPU memory (both trainers): {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
