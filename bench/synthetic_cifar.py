"""A CIFAR-10-shaped synthetic image dataset, for runs where the real one cannot go (bench/device_check.sh).

The Hub's `uoft-cs/cifar10` schema (`img`: 32x32 RGB images, `label`: a `ClassLabel` of CIFAR-10's names), `train`
and `test` splits, written with `save_to_disk` for `recipes/cifar.py --dataset <dir>`. Each class is a colour and a
stripe orientation under heavy pixel noise, so a student learns it in an epoch or two: a test accuracy well above 0.1
says the run trained.

    python bench/synthetic_cifar.py --output_dir /tmp/synthetic-cifar10 --train_size 10000 --test_size 2000
"""

from __future__ import annotations

import argparse
import os

import datasets
import numpy as np
import PIL.Image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def synthetic_images(
    num_images: int, colours: np.ndarray, rng: np.random.Generator
) -> tuple[list[PIL.Image.Image], np.ndarray]:
    """`num_images` images and labels, class `c` drawn as colour `colours[c]` with stripes at angle `c * pi / 10`."""
    labels = rng.integers(len(CIFAR10_CLASSES), size=num_images)
    angles = np.linspace(0, np.pi, len(CIFAR10_CLASSES), endpoint=False)
    y, x = np.mgrid[0:32, 0:32]
    images = []
    for label in labels:
        stripes = 40 * np.sin((x * np.cos(angles[label]) + y * np.sin(angles[label])) * 0.8)
        pixels = colours[label] + stripes[..., None] + rng.normal(0, 60, size=(32, 32, 3))
        images.append(PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="A new directory for the DatasetDict.")
    parser.add_argument("--train_size", type=int, default=10_000)
    parser.add_argument("--test_size", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    if os.path.exists(options.output_dir):
        parser.error(f"--output_dir {options.output_dir!r} exists; name a new directory.")
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CIFAR10_CLASSES))})
    rng = np.random.default_rng(options.seed)
    colours = rng.uniform(40, 215, size=(len(CIFAR10_CLASSES), 3))  # the classes' colours, both splits
    splits = {}
    for split, size in (("train", options.train_size), ("test", options.test_size)):
        images, labels = synthetic_images(size, colours, rng)
        splits[split] = datasets.Dataset.from_dict({"img": images, "label": labels}, features=features)
    datasets.DatasetDict(splits).save_to_disk(options.output_dir)


if __name__ == "__main__":
    main()
