"""Images per second of the CIFAR recipe's data pipeline alone, in 0 or more dataloader workers, against the student's
training step alone: whether data loading starves the student.

The pipeline is the recipes': `with_image_transform` (decode, pad 4 / random crop / flip, normalise: the paper's
augmentation) read through a `DataLoader` with `MentorNetCollator`, batch 128, as `Trainer` builds it with
`dataloader_num_workers`. The transforms are lazy (`Dataset.with_transform`), so they run in the workers. The student
step is a forward, backward and SGD step on batches already in memory: the bench's 604k-parameter student
(`bench/noisy_cifar.py`), or timm's resnet18 (bf16 on a GPU with `--bf16`).

    OMP_NUM_THREADS=1 python bench/data_pipeline.py --workers 0 1 --threads 1
    python bench/data_pipeline.py --dataset /tmp/synthetic-cifar10 --device cuda --bf16 --student resnet18 \
        --workers 0 4 8 --images 20000      # bench/device_check.sh
"""

from __future__ import annotations

import argparse
import os
import time

import timm
import torch
import torch.nn.functional as F
from noisy_cifar import CIFAR_MEAN, CIFAR_STD, student_factory
from recipe_helpers import load_dataset_dict
from torch.utils.data import DataLoader

from hf_mentornet.data import MentorNetCollator, image_transforms, with_image_transform

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "../../shared/data/cifar10")


def pipeline_images_per_second(dataset, workers: int, batch_size: int) -> float:
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=MentorNetCollator(),
        persistent_workers=False, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    start, seen = time.perf_counter(), 0
    for batch in loader:  # the workers' start is counted: Trainer starts them every epoch
        seen += batch["pixel_values"].shape[0]
    return seen / (time.perf_counter() - start)


def student_images_per_second(
    student: torch.nn.Module, logits_of, device: str, bf16: bool, batch_size: int, steps: int
) -> float:
    student = student.to(device).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(10, (batch_size,), device=device)
    synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None
    for step in range(steps + 2):  # two untimed warm-up steps
        if step == 2:
            synchronize()
            start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(logits_of(student, images).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DEFAULT_DATA, help="CIFAR-10 (the Hub's schema) as a local path.")
    parser.add_argument("--images", type=int, default=5_000, help="Training images read per measurement.")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--student", choices=["bench-small-resnet", "resnet18"], default="bench-small-resnet")
    parser.add_argument("--steps", type=int, default=20, help="Timed student steps.")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process (CPU).")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)

    train = load_dataset_dict(options.dataset, {"image_column": "img", "label_column": "label"})["train"]
    train = train.select(range(min(options.images, len(train))))
    transform = image_transforms(None, train=True, cifar_augmentation=True, mean=CIFAR_MEAN, std=CIFAR_STD)
    train = with_image_transform(train, transform, image_column="img", label_column="label")
    if options.student == "resnet18":
        student, logits_of = timm.create_model("resnet18", num_classes=10), lambda model, images: model(images)
    else:
        student, logits_of = student_factory()(), lambda model, images: model(pixel_values=images).logits

    where = "GPU " + torch.cuda.get_device_name() if options.device == "cuda" else f"CPU, {options.threads} thread(s)"
    print(
        f"{len(train)} CIFAR-10 training images, batch {options.batch_size}, {os.cpu_count()} cores; student on {where}"
    )
    print("| what | images/s |")
    print("|---|---|")
    for workers in options.workers:
        rate = pipeline_images_per_second(train, workers, options.batch_size)
        print(f"| data pipeline, {workers} worker(s) | {rate:.0f} |")
    rate = student_images_per_second(
        student, logits_of, options.device, options.bf16, options.batch_size, options.steps
    )
    print(f"| student step ({options.student}{', bf16' if options.bf16 else ''}) | {rate:.0f} |")


if __name__ == "__main__":
    main()
