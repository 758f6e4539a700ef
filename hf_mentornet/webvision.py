"""WebVision 1.0 (Li et al., 2017) as a `datasets.DatasetDict`: the real-noise benchmark of the paper's Sec. 5.2.

The folder layout is the official one (the "Resized images (small version)" archives and `info.tar` of
https://data.vision.ee.ethz.ch/cvl/webvision/download.html), plus the ILSVRC12 validation images of the same
classes sorted into one folder per synset, as the usual ImageNet preparation leaves them
(`recipes/README.md` gives the commands)::

    root/
    ├── info/
    │   ├── synsets.txt               # 1000 lines "n01440764 tench, Tinca tinca"; line i is class i
    │   ├── train_filelist_google.txt # "google/q0001/000000.jpg 0"
    │   ├── train_filelist_flickr.txt # "flickr/q0001/000000.jpg 0"
    │   └── val_filelist.txt          # "val000001.jpg 0"
    ├── google/q0001/*.jpg ...
    ├── flickr/q0001/*.jpg ...
    ├── val_images_256/*.jpg
    └── imagenet/val/n01440764/ILSVRC2012_val_*.JPEG ...

WebVision's classes are the ILSVRC12 classes in the same order, so the i-th line of `info/synsets.txt` names the
ImageNet folder of class i. Mini-WebVision, the paper's "Mini" setting, is the Google subset restricted to the first
50 classes (`num_classes=50, sources=("google",)`, the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets
from transformers.utils import logging

__all__ = ["WEBVISION_SOURCES", "WEBVISION_SPLITS", "load_webvision"]

logger = logging.get_logger(__name__)

WEBVISION_SOURCES = ("google", "flickr")
WEBVISION_SPLITS = ("train", "val", "imagenet_val")
_PREPARATION = "Prepare the folder as described in recipes/README.md (section 'WebVision data')."


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"WebVision {what} not found: expected {path}. {_PREPARATION}")
    return path


def _read_filelist(root: Path, filelist: str, image_dir: Path, num_classes: int) -> tuple[list[str], list[int]]:
    """The images and labels of one file list, keeping the first `num_classes` classes."""
    paths, labels = [], []
    list_path = _require(root / "info" / filelist, "file list")
    for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name, _, label = line.strip().rpartition(" ")
        if not name or not label.isdigit():
            raise ValueError(f"{list_path}, line {line_number}: expected '<image path> <class index>', got {line!r}.")
        if int(label) < num_classes:
            paths.append(str(image_dir / name))
            labels.append(int(label))
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(paths)} images listed in {list_path} are missing, e.g. {missing[0]}. "
            f"{_PREPARATION}"
        )
    return paths, labels


def _read_imagenet_val(root: Path, synsets: list[str]) -> tuple[list[str], list[int]]:
    """The ILSVRC12 validation images of the given synsets, from `imagenet/val/<synset>/`."""
    paths, labels = [], []
    for label, synset in enumerate(synsets):
        folder = _require(root / "imagenet" / "val" / synset, f"ILSVRC12 validation folder of class {label}")
        images = sorted(str(path) for path in folder.iterdir() if path.is_file())
        paths += images
        labels += [label] * len(images)
    return paths, labels


def _load_local(root: Path, num_classes: int, sources: Sequence[str], splits: Sequence[str]) -> datasets.DatasetDict:
    synsets_path = _require(root / "info" / "synsets.txt", "class list")
    synsets = [line.split()[0] for line in synsets_path.read_text().splitlines() if line.strip()]
    if num_classes > len(synsets):
        raise ValueError(
            f"`num_classes`={num_classes} exceeds the {len(synsets)} classes listed in {synsets_path}; "
            "use at most that many (50 for mini-WebVision, 1000 for the entire WebVision)."
        )
    synsets = synsets[:num_classes]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=synsets)})
    dataset = datasets.DatasetDict()
    for split in splits:
        if split == "train":
            paths, labels = [], []
            for source in sources:
                source_paths, source_labels = _read_filelist(root, f"train_filelist_{source}.txt", root, num_classes)
                paths += source_paths
                labels += source_labels
        elif split == "val":
            paths, labels = _read_filelist(root, "val_filelist.txt", root / "val_images_256", num_classes)
        else:
            paths, labels = _read_imagenet_val(root, synsets)
        # Paths only: `datasets.Image` decodes each image when it is accessed.
        dataset[split] = datasets.Dataset.from_dict({"image": paths, "label": labels}, features=features)
    return dataset


def _load_hub(
    dataset_id: str,
    num_classes: int,
    splits: Sequence[str],
    image_column: str,
    label_column: str,
) -> datasets.DatasetDict:
    try:
        hub_dataset = datasets.load_dataset(dataset_id)
    except Exception as error:  # the Hub client raises many types (offline mode, not found, gated, network)
        raise ValueError(
            f"`root`={dataset_id!r} is not a local WebVision folder, and loading it as a Hub dataset id failed "
            f"({type(error).__name__}: {error}). With HF_HUB_OFFLINE=1 a Hub dataset loads only from the local cache: "
            f"download it once online (unset HF_HUB_OFFLINE), or pass the path of a WebVision folder. {_PREPARATION}"
        ) from error
    dataset = datasets.DatasetDict()
    for split in splits:
        if split not in hub_dataset:
            raise ValueError(
                f"`splits` asks for {split!r}, but the Hub dataset {dataset_id!r} has the splits "
                f"{list(hub_dataset)}; pass `splits` with those names."
            )
        found = hub_dataset[split].column_names
        if image_column not in found or label_column not in found:
            raise ValueError(
                f"The Hub dataset {dataset_id!r} (split {split!r}) has the columns {found}, not "
                f"`image_column`={image_column!r} and `label_column`={label_column!r}; pass the names of its "
                "image and integer label columns."
            )
        split_dataset = hub_dataset[split].select_columns([image_column, label_column])
        split_dataset = split_dataset.rename_columns({image_column: "image", label_column: "label"})
        dataset[split] = split_dataset.filter(
            lambda labels: [label < num_classes for label in labels], input_columns="label", batched=True
        )
    return dataset


def load_webvision(
    root: str | os.PathLike,
    *,
    num_classes: int = 50,
    sources: Sequence[str] = ("google",),
    splits: Sequence[str] = WEBVISION_SPLITS,
    image_column: str = "image",
    label_column: str = "label",
) -> datasets.DatasetDict:
    """Load WebVision 1.0 with the first `num_classes` classes, as in the paper's Sec. 5.2.

    Args:
        root (`str` or `os.PathLike`):
            A folder with the official WebVision layout (see the module docstring and `recipes/README.md`), or a
            Hub dataset id, loaded with `datasets.load_dataset` (offline only from the cache).
        num_classes (`int`, *optional*, defaults to 50):
            Keep the classes `0 .. num_classes - 1` in every split: 50 is mini-WebVision, 1000 the entire benchmark.
        sources (`Sequence[str]`, *optional*, defaults to `("google",)`):
            The crawled training images to use: `"google"`, `"flickr"` or both. Ignored for a Hub dataset id.
        splits (`Sequence[str]`, *optional*, defaults to `("train", "val", "imagenet_val")`):
            The splits to load: `"train"` (noisy web labels), `"val"` (the WebVision validation set, clean) and
            `"imagenet_val"` (the ILSVRC12 validation images of the same classes, clean). For a Hub dataset id,
            the names of its splits.
        image_column (`str`, *optional*, defaults to `"image"`): a Hub dataset's image column.
        label_column (`str`, *optional*, defaults to `"label"`): a Hub dataset's integer class column.

    Returns:
        `datasets.DatasetDict`: one dataset per split with an `image` column (a `datasets.Image`, decoded lazily
        from its file) and a `label` column (a `datasets.ClassLabel` named by synset for a local folder).

    Raises:
        `FileNotFoundError`: a file or folder of the layout is missing (the message names the path expected).
        `ValueError`: bad arguments, or a Hub dataset id that cannot be loaded.
    """
    if not 1 <= num_classes <= 1000:
        raise ValueError(f"`num_classes`={num_classes!r} must be in [1, 1000]: 50 for mini-WebVision, 1000 for all.")
    unknown = [source for source in sources if source not in WEBVISION_SOURCES]
    if unknown or not sources:
        raise ValueError(f"`sources`={list(sources)!r} must be a non-empty subset of {list(WEBVISION_SOURCES)}.")
    if not os.path.isdir(root):
        # A Hub id is "name" or "owner/name"; anything else is a local folder that is missing.
        if os.path.isabs(root) or str(root).startswith(".") or str(root).count("/") > 1 or os.path.exists(root):
            raise FileNotFoundError(f"`root`={str(root)!r}: the WebVision folder does not exist. {_PREPARATION}")
        return _load_hub(str(root), num_classes, splits, image_column, label_column)
    unknown = [split for split in splits if split not in WEBVISION_SPLITS]
    if unknown or not splits:
        raise ValueError(f"`splits`={list(splits)!r} must be a non-empty subset of {list(WEBVISION_SPLITS)}.")
    dataset = _load_local(Path(root), num_classes, sources, splits)
    logger.info(f"WebVision from {root}: {', '.join(f'{name} {len(split)}' for name, split in dataset.items())}.")
    return dataset
