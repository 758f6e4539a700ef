"""Synthetic label noise for the paper's controlled experiments (Jiang et al., 2018, Sec. 5.1), with the truth kept.

[`inject_label_noise`] corrupts the label column of a `datasets` dataset and keeps the original label beside it in
`clean_label`, a boolean `is_noisy`, and a stable `sample_index` (see [`add_sample_index`]) so per-sample records
of the trainer map back to rows. [`noise_report`] measures the realised noise and [`save_noise_report`] writes it
to disk with a heatmap of the clean x noisy transition counts.

Noise types, with `p = noise_rate` and `m` classes:

- `"uniform"` (default, the paper's protocol after Zhang et al., 2017): with probability `p` the label is replaced
  by a class drawn uniformly from all `m` classes, possibly the true one, so the expected fraction of changed
  labels is `p * (m - 1) / m`;
- `"symmetric"`: exactly `round(p * n)` labels change, each to a uniformly drawn *different* class (map-style
  datasets only: the exact count needs the whole column);
- `"pair"` (pair-flip / asymmetric): with probability `p`, class `c` becomes `(c + 1) % m`;
- `"transition"`: with probability `p` the label is redrawn from row `T[c]` of a user-given row-stochastic `m x m`
  matrix (`T[i, j] = P(noisy j | clean i)`), i.e. the channel is `(1 - p) * I + p * T`; pass `noise_rate=1.0` to
  apply `T` as it is. "uniform" and "pair" are this with `T` all `1 / m` and the shift `c -> c + 1`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import numbers
import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    DatasetInfo,
    Features,
    IterableDataset,
    IterableDatasetDict,
    Value,
    concatenate_datasets,
)
from datasets.features.features import FeatureType

__all__ = [
    "CLEAN_LABEL_COLUMN",
    "IS_NOISY_COLUMN",
    "NOISE_TYPES",
    "SAMPLE_INDEX_COLUMN",
    "add_sample_index",
    "check_sample_index",
    "inject_label_noise",
    "noise_report",
    "save_noise_report",
    "UNVERIFIED_LABEL",
    "with_verified_labels",
]

logger = logging.getLogger(__name__)

NOISE_TYPES = ("uniform", "symmetric", "pair", "transition")
CLEAN_LABEL_COLUMN = "clean_label"
IS_NOISY_COLUMN = "is_noisy"
SAMPLE_INDEX_COLUMN = "sample_index"
# The `id` of the features of the columns this module writes: a dataset's own `clean_label` or `is_noisy` is never
# mistaken for ours (the id survives map, select, shuffle, save_to_disk and parquet).
OWN_FEATURE_ID = "hf_mentornet"

AnyDataset = TypeVar("AnyDataset", Dataset, DatasetDict, IterableDataset, IterableDatasetDict)


def add_sample_index(dataset: AnyDataset, column: str = SAMPLE_INDEX_COLUMN) -> AnyDataset:
    """
    Add a stable row index (`int64`) as `column`, once: a dataset that already has the column is returned unchanged
    (after checking it is an index: integers, none negative, none repeated), so the index keeps pointing at the
    original rows after shuffling or selecting.

    Args:
        dataset (`Dataset`, `DatasetDict`, `IterableDataset` or `IterableDatasetDict`): the data (every split of a
            dict gets its own index).
        column (`str`, *optional*, defaults to `"sample_index"`): the name of the index column.

    A map-style dataset gets 0..n-1 (one with an indices mapping, after `shuffle`, `select`, `train_test_split`, is
    flattened first, as `Dataset.add_column` does). A stream of `k` shards gets `row * k + shard`, `row` counted
    within the shard: unique across shards, so it stays unique when the stream is split over processes or DataLoader
    workers (`split_dataset_by_node`), without knowing the shards' sizes; with unequal shards some numbers are
    unused. It is stable as long as the stream's shard order is, and resuming (`skip`, `state_dict`) keeps it. Index
    the whole stream once: streams indexed one by one and then interleaved repeat their indices, which the trainer
    cannot check without reading the stream (it checks a map-style dataset's index).
    """
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return type(dataset)({name: add_sample_index(split, column) for name, split in dataset.items()})
    feature = Value("int64", id=OWN_FEATURE_ID)
    if isinstance(dataset, IterableDataset):
        if dataset.features is not None and column in dataset.features:
            return dataset
        features = None if dataset.features is None else Features({**dataset.features, column: feature})
        num_shards = dataset.n_shards

        def indexed_shard(shard: int) -> IterableDataset:
            part = dataset.shard(num_shards=num_shards, index=shard) if num_shards > 1 else dataset
            kwargs = {"column": column, "num_shards": num_shards, "shard": shard}
            return part.map(_enumerate, batched=True, with_indices=True, fn_kwargs=kwargs, features=features)

        if num_shards == 1:
            return indexed_shard(0)
        # One mapped stream per shard, concatenated: still `num_shards` shards, each knowing its own number.
        return concatenate_datasets([indexed_shard(shard) for shard in range(num_shards)])
    if column in dataset.column_names:
        check_sample_index(dataset, column, subject=f"The dataset's own `{column}`")
        return dataset
    return _set_columns(dataset, {column: np.arange(len(dataset), dtype=np.int64)}, {column: feature})


def inject_label_noise(
    dataset: AnyDataset,
    noise_rate: float,
    noise_type: str = "uniform",
    *,
    seed: int = 0,
    label_column: str = "label",
    transition_matrix: np.ndarray | list[list[float]] | None = None,
    num_classes: int | None = None,
    splits: str | tuple[str, ...] = ("train",),
    from_clean_label: bool = False,
) -> AnyDataset:
    """
    Corrupt the labels of `dataset`, keeping the truth.

    Returns the dataset with the corrupted labels in `label_column` and three more columns: `clean_label` (the
    original label, same feature type as `label_column`, a `ClassLabel` stays one), `is_noisy` (`bool`, label !=
    clean_label) and `sample_index` (added with [`add_sample_index`] if absent). The original labels are never
    lost: on a dataset that already has `clean_label` the noise is drawn afresh from `clean_label`, so calling this
    again (with another rate, type or seed) replaces the noise instead of corrupting corrupted labels.

    The noise is a pure function of the seed and the data, identical on every process and machine. A map-style
    `Dataset` is noised in one vectorised pass over the label column with `numpy.random.Generator(PCG64(seed))`
    (row order matters: noise before shuffling). An `IterableDataset` is noised per example from a splitmix64 hash
    of `(seed, sample_index)`, so a resumed (`skip`) or sharded stream gets the same noise for the same example;
    `"symmetric"` cannot be done per example and raises.

    Args:
        dataset (`Dataset`, `DatasetDict`, `IterableDataset` or `IterableDatasetDict`): the data; of a dict only
            `splits` are noised, the other splits are returned untouched.
        noise_rate (`float`): `p` in [0, 1], see the module docstring for its meaning per noise type.
        noise_type (`str`, *optional*, defaults to `"uniform"`): one of `"uniform"`, `"symmetric"`, `"pair"`,
            `"transition"`.
        seed (`int`, *optional*, defaults to 0): the seed of the noise.
        label_column (`str`, *optional*, defaults to `"label"`): an integer or `ClassLabel` column.
        transition_matrix (array-like of shape `(m, m)`, *optional*): `T[i, j] = P(noisy j | clean i)`, rows
            summing to 1; required for, and only for, `noise_type="transition"`.
        num_classes (`int`, *optional*): `m`; inferred from a `ClassLabel`, else the transition matrix, else the
            largest label + 1 (a stream without a `ClassLabel` needs it).
        splits (`str` or `tuple[str, ...]`, *optional*, defaults to `("train",)`): the splits of a dict to noise.
        from_clean_label (`bool`, *optional*, defaults to `False`): the dataset's own `clean_label` column holds the
            true labels: draw the noise from it (replacing `label_column`) and recompute `is_noisy`.

    Example:

    ```python
    >>> from hf_mentornet.data import load_embedded_dataset
    >>> from hf_mentornet.noise import inject_label_noise, noise_report
    >>> ds = inject_label_noise(load_embedded_dataset("digits"), 0.4, seed=0)
    >>> round(noise_report(ds["train"])["noise_rate"], 2)  # about 0.4 * 9 / 10
    0.36
    ```
    """
    if not isinstance(noise_rate, numbers.Real) or isinstance(noise_rate, bool) or not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"`noise_rate`={noise_rate!r} is not a number in [0, 1]; pass a probability such as 0.2.")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed`={seed!r} must be a non-negative integer, e.g. 0.")
    if num_classes is not None and (not isinstance(num_classes, numbers.Integral) or num_classes < 2):
        raise ValueError(f"`num_classes`={num_classes!r} must be an integer >= 2, or None to infer it.")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"`noise_type`={noise_type!r} is unknown; pass one of {NOISE_TYPES}.")
    if (noise_type == "transition") != (transition_matrix is not None):
        raise ValueError(
            f"`transition_matrix` is {'missing' if transition_matrix is None else 'given'} with "
            f"`noise_type`={noise_type!r}; a transition matrix goes with noise_type='transition' and only with it."
        )
    kwargs = {
        "noise_rate": noise_rate,
        "noise_type": noise_type,
        "seed": seed,
        "label_column": label_column,
        "transition_matrix": transition_matrix,
        "num_classes": num_classes,
        "from_clean_label": from_clean_label,
    }
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        missing = [name for name in splits if name not in dataset]
        if missing:
            raise ValueError(f"`splits`={splits!r}: {missing} not in the dataset, whose splits are {list(dataset)}.")
        return type(dataset)(
            {name: inject_label_noise(split, **kwargs) if name in splits else split for name, split in dataset.items()}
        )
    if isinstance(dataset, IterableDataset):
        return _inject_stream(dataset, **kwargs)
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"`dataset` is a {type(dataset).__name__}; pass a datasets.Dataset, DatasetDict, IterableDataset or "
            "IterableDatasetDict (e.g. Dataset.from_dict({'image': ..., 'label': ...}))."
        )

    if len(dataset) == 0:
        raise ValueError("`dataset` has no rows, so there are no labels to corrupt; pass a non-empty dataset.")
    feature = _label_feature(dataset.features, label_column)
    _check_own_columns(dataset.features, from_clean_label)
    source = CLEAN_LABEL_COLUMN if CLEAN_LABEL_COLUMN in dataset.column_names else label_column
    # Adding columns needs a dataset without an indices mapping; flattening once also makes the read below cheap.
    dataset = dataset.flatten_indices() if dataset._indices is not None else dataset
    column = dataset.data.column(source)
    if column.null_count:
        raise ValueError(f"`{source}` has {column.null_count} missing labels; drop or fill those rows first.")
    clean = column.to_numpy().astype(np.int64)
    m = _num_classes(feature, num_classes, transition_matrix, clean)
    if transition_matrix is not None and m == len(transition_matrix) and clean.max(initial=0) >= m:
        raise ValueError(
            f"`transition_matrix` is {len(transition_matrix)} x {len(transition_matrix)}, but `{source}` has labels up "
            f"to {int(clean.max())}; pass an m x m matrix for the m classes of the data."
        )
    _check_labels(clean, m, source)
    cdf = _transition_cdf(transition_matrix, m)

    rng = np.random.Generator(np.random.PCG64(seed))
    if noise_type == "symmetric":
        noisy = _symmetric(clean, noise_rate, m, rng)
    else:
        noisy = _corrupt(clean, noise_type, noise_rate, m, cdf, rng.random(len(clean)), rng.random(len(clean)))
    logger.info(f"{noise_type} noise at rate {noise_rate} (seed {seed}): {int((noisy != clean).sum())} labels changed")

    columns = {label_column: noisy, CLEAN_LABEL_COLUMN: clean, IS_NOISY_COLUMN: noisy != clean}
    features = {
        label_column: feature,
        CLEAN_LABEL_COLUMN: _ours(dataset.features.get(CLEAN_LABEL_COLUMN, feature)),
        IS_NOISY_COLUMN: _ours(Value("bool")),
    }
    return add_sample_index(_set_columns(dataset, columns, features))


UNVERIFIED_LABEL = -1
"""The `clean_label` of a row whose true label is not known (data that came noisy, see [`with_verified_labels`]): the
trainers leave such rows out of the selection metrics, and a data-driven curriculum never learns from them."""


def with_verified_labels(
    dataset: Dataset,
    verified_label_column: str | None = None,
    *,
    label_column: str = "label",
    unverified_label: int | None = UNVERIFIED_LABEL,
    num_classes: int | None = None,
) -> Dataset:
    """
    Prepare a dataset whose labels are already noisy (crowd-sourced, web-crawled: CIFAR-10N, Clothing1M,
    Food-101N...) for the trainers: `label_column` is kept as it is (the given, possibly wrong labels); a stable
    `sample_index` is added (see [`add_sample_index`]); and, from `verified_label_column` (labels checked by a person
    for some of the rows), a `clean_label` column: the verified label where there is one, [`UNVERIFIED_LABEL`] (-1)
    elsewhere. The user's columns are never changed.

    Args:
        dataset (`Dataset`): the data (one split).
        verified_label_column (`str`, *optional*): the column of verified labels: class ids of `label_column`'s
            classes (integers, or the same `ClassLabel`), missing or `unverified_label` for a row nobody verified.
            None: no row is verified (no `clean_label` is added).
        label_column (`str`, *optional*, defaults to `"label"`): the given labels, integer or `ClassLabel`.
        unverified_label (`int`, *optional*, defaults to -1): the value of `verified_label_column` that marks an
            unverified row. It must not be a class id.
        num_classes (`int`, *optional*): inferred from a `ClassLabel`, else the largest label + 1.

    Returns:
        `Dataset`: the dataset with `sample_index` and, with `verified_label_column`, `clean_label`.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"`dataset` is a {type(dataset).__name__}; pass one split as a datasets.Dataset (a stream's verified rows "
            "cannot be checked before training)."
        )
    if len(dataset) == 0:
        raise ValueError("`dataset` has no rows; pass a non-empty dataset.")
    feature = _label_feature(dataset.features, label_column)
    if CLEAN_LABEL_COLUMN in dataset.column_names and getattr(dataset.features[CLEAN_LABEL_COLUMN], "id", None) != (
        OWN_FEATURE_ID
    ):
        raise ValueError(
            f"The dataset has its own `{CLEAN_LABEL_COLUMN}` column, where the verified labels would go. Rename it, "
            f"e.g. `dataset.rename_column('{CLEAN_LABEL_COLUMN}', 'verified_label')`, and pass "
            "`verified_label_column='verified_label'`."
        )
    dataset = dataset.flatten_indices() if dataset._indices is not None else dataset
    labels = dataset.data.column(label_column)
    if labels.null_count:
        raise ValueError(f"`{label_column}` has {labels.null_count} missing labels; drop or fill those rows first.")
    labels = labels.to_numpy().astype(np.int64)
    m = _num_classes(feature, num_classes, None, labels)
    _check_labels(labels, m, label_column)
    if verified_label_column is None:
        return add_sample_index(dataset)
    if verified_label_column not in dataset.column_names:
        raise ValueError(
            f"`verified_label_column`={verified_label_column!r} is not a column of the dataset, whose columns are "
            f"{dataset.column_names}."
        )
    verified_feature = dataset.features[verified_label_column]
    if isinstance(verified_feature, ClassLabel):
        if not isinstance(feature, ClassLabel) or verified_feature.names != feature.names:
            raise ValueError(
                f"`verified_label_column`={verified_label_column!r} is a ClassLabel of other classes than "
                f"`label_column`={label_column!r}; cast it to the label column's: "
                f"`dataset.cast_column({verified_label_column!r}, dataset.features[{label_column!r}])`."
            )
    elif not (isinstance(verified_feature, Value) and pa.types.is_integer(verified_feature.pa_type)):
        raise TypeError(
            f"`verified_label_column`={verified_label_column!r} has feature {verified_feature}, not class ids; cast it "
            f"to the label column's classes, e.g. `dataset.cast_column({verified_label_column!r}, "
            f"dataset.features[{label_column!r}])` for class names."
        )
    if unverified_label is not None and (
        not isinstance(unverified_label, numbers.Integral) or isinstance(unverified_label, bool)
    ):
        raise ValueError(f"`unverified_label`={unverified_label!r} must be an integer, e.g. -1, or None.")
    if unverified_label is not None and 0 <= unverified_label < m:
        raise ValueError(
            f"`unverified_label`={unverified_label} is a class id (the classes are 0..{m - 1}), so a verified row of "
            f"class {unverified_label} could not be told from an unverified one; mark unverified rows with a value "
            "outside the classes, e.g. -1, or leave them missing (None)."
        )
    column = dataset.data.column(verified_label_column)
    present = ~column.is_null().to_numpy(zero_copy_only=False)
    verified = column.fill_null(UNVERIFIED_LABEL if unverified_label is None else unverified_label)
    verified = verified.to_numpy().astype(np.int64)
    known = present & (verified != unverified_label)
    outside = verified[known & ((verified < 0) | (verified >= m))]
    if outside.size:
        raise ValueError(
            f"`verified_label_column`={verified_label_column!r} has {outside.size} values outside the classes "
            f"0..{m - 1} that are not the unverified mark `unverified_label`={unverified_label}, such as "
            f"{int(outside[0])}: fix those rows, or pass the mark they use as `unverified_label`."
        )
    if not known.any():
        raise ValueError(
            f"`verified_label_column`={verified_label_column!r} has no verified row (all missing or "
            f"`unverified_label`={unverified_label}); check the column and the mark, or pass "
            "`verified_label_column=None`."
        )
    clean = np.where(known, verified, UNVERIFIED_LABEL)
    logger.info(
        f"{int(known.sum())} of {len(known)} rows verified; {int((clean[known] != labels[known]).sum())} of them "
        "have a wrong label."
    )
    clean_feature = _ours(Value("int64"))
    return add_sample_index(_set_columns(dataset, {CLEAN_LABEL_COLUMN: clean}, {CLEAN_LABEL_COLUMN: clean_feature}))


def noise_report(
    dataset: Dataset | IterableDataset, label_column: str = "label", num_classes: int | None = None
) -> dict[str, Any]:
    """
    Measure the realised label noise of a dataset returned by [`inject_label_noise`].

    Args:
        dataset (`Dataset` or `IterableDataset`): one split with `label_column` and `clean_label` (a stream is read
            to its end).
        label_column (`str`, *optional*, defaults to `"label"`): the (noisy) label column.
        num_classes (`int`, *optional*): inferred from a `ClassLabel`, else the largest label + 1.

    Returns:
        `dict`: `num_samples`, `num_classes`, `num_noisy`, `noise_rate` (fraction of labels != clean label),
        `per_class_count` and `per_class_noise_rate` (by clean class, `None` for a class without samples),
        `transition_counts` (`m x m` list of lists, rows the clean class, columns the noisy label) and
        `class_names` (the `ClassLabel` names, or `None`).
    """
    features = dataset.features
    if features is not None:
        feature = _label_feature(features, label_column)
        if CLEAN_LABEL_COLUMN not in features:
            raise ValueError(
                f"`dataset` has no {CLEAN_LABEL_COLUMN!r} column (columns: {list(features)}); pass the output of "
                "inject_label_noise."
            )
    names = feature.names if features is not None and isinstance(feature, ClassLabel) else None
    if isinstance(dataset, Dataset):
        table = dataset.select_columns([label_column, CLEAN_LABEL_COLUMN]).flatten_indices().data
        noisy, clean = (table.column(c).to_numpy().astype(np.int64) for c in (label_column, CLEAN_LABEL_COLUMN))
    else:
        batches = list(dataset.select_columns([label_column, CLEAN_LABEL_COLUMN]).iter(batch_size=10_000))
        noisy = np.concatenate([np.asarray(b[label_column], dtype=np.int64) for b in batches] or [np.zeros(0, int)])
        clean = np.concatenate([np.asarray(b[CLEAN_LABEL_COLUMN], dtype=np.int64) for b in batches] or [noisy])
    m = num_classes or (len(names) if names else int(max(noisy.max(initial=-1), clean.max(initial=-1))) + 1)
    _check_labels(noisy, m, label_column)
    _check_labels(clean, m, CLEAN_LABEL_COLUMN)
    counts = np.bincount(clean * m + noisy, minlength=m * m).reshape(m, m)
    per_class = counts.sum(axis=1)
    per_class_noisy = per_class - np.diag(counts)
    num_noisy = int(per_class_noisy.sum())
    return {
        "num_samples": len(clean),
        "num_classes": m,
        "num_noisy": num_noisy,
        "noise_rate": num_noisy / len(clean) if len(clean) else 0.0,
        "per_class_count": per_class.tolist(),
        "per_class_noise_rate": [
            int(k) / int(c) if c else None for k, c in zip(per_class_noisy, per_class, strict=True)
        ],
        "transition_counts": counts.tolist(),
        "class_names": names,
    }


def save_noise_report(report: dict[str, Any], output_dir: str | os.PathLike) -> tuple[Path, Path]:
    """
    Write a [`noise_report`] as `noise_report.json` and `noise_transition.png` (the row-normalised clean x noisy
    transition matrix as a heatmap) in `output_dir`, created if needed.

    Returns:
        `tuple[Path, Path]`: the paths of the JSON file and of the PNG.
    """
    # The Figure API renders with Agg without touching pyplot's global backend, safe on headless machines.
    from matplotlib.figure import Figure

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / "noise_report.json"
    json_path.write_text(json.dumps(report, indent=1))

    counts = np.asarray(report["transition_counts"], dtype=np.float64)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    image = ax.imshow(rows, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="P(noisy | clean)")
    ax.set_xlabel("noisy label")
    ax.set_ylabel("clean label")
    ax.set_title(f"realised noise rate {report['noise_rate']:.3f} ({report['num_noisy']}/{report['num_samples']})")
    names = report["class_names"]
    if names and len(names) <= 20:
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
    png_path = output_dir / "noise_transition.png"
    fig.savefig(png_path, dpi=100, bbox_inches="tight")
    return json_path, png_path


def _enumerate(
    batch: dict[str, list], indices: list[int], column: str, num_shards: int, shard: int
) -> dict[str, list[int]]:
    return {column: [index * num_shards + shard for index in indices]}


def _ours(feature: FeatureType) -> FeatureType:
    return dataclasses.replace(feature, id=OWN_FEATURE_ID)


def _check_own_columns(features: Features, from_clean_label: bool) -> None:
    """Refuse `clean_label` / `is_noisy` columns this module did not write (unless `from_clean_label`)."""
    foreign = [
        name
        for name in (CLEAN_LABEL_COLUMN, IS_NOISY_COLUMN)
        if name in features and getattr(features[name], "id", None) != OWN_FEATURE_ID
    ]
    if foreign and not (from_clean_label and CLEAN_LABEL_COLUMN in features):
        raise ValueError(
            f"The dataset has its own {foreign} column(s), which inject_label_noise would replace with its own. If "
            f"`{CLEAN_LABEL_COLUMN}` holds the true labels, pass `from_clean_label=True` to draw the noise from it; "
            f"otherwise rename them first, e.g. `dataset.rename_column('{foreign[0]}', 'given_{foreign[0]}')`."
        )


def check_sample_index(
    dataset: Dataset, column: str = SAMPLE_INDEX_COLUMN, subject: str | None = None, needed_by: str = "row indices"
) -> np.ndarray:
    """Refuse a `column` that is not integer, or has negative or repeated values (rows indexed shard by shard, then
    concatenated?); return its values. `subject` starts the message (default: the column's name), `needed_by` says
    what the index is for."""
    subject = subject or f"`{column}`"
    fix = f"drop it and let add_sample_index number the rows: `add_sample_index(dataset.remove_columns('{column}'))`"
    feature = dataset.features[column]
    if not (isinstance(feature, Value) and pa.types.is_integer(feature.pa_type)):
        raise ValueError(f"{subject} has feature {feature}, not integer row indices ({needed_by}); {fix}.")
    index = np.asarray(dataset.with_format("numpy", columns=[column])[:][column])
    repeated = len(index) - len(np.unique(index))
    if repeated or (len(index) and index.min() < 0):
        raise ValueError(
            f"{subject} has {repeated} repeated and {int((index < 0).sum())} negative values, so it cannot identify "
            f"rows ({needed_by}); {fix}, on the whole dataset."
        )
    return index


def _set_columns(dataset: Dataset, columns: dict[str, np.ndarray], features: dict[str, Any]) -> Dataset:
    """Replace or append whole columns in one Arrow concatenation (zero-copy for the untouched columns), keeping the
    column order; much faster than `map` or repeated `add_column` on millions of rows."""
    dataset = dataset.flatten_indices() if dataset._indices is not None else dataset
    table = pa.table({name: pa.array(values, type=features[name].pa_type) for name, values in columns.items()})
    new = Dataset(table, info=DatasetInfo(features=Features(features)))
    kept = dataset.remove_columns([name for name in columns if name in dataset.column_names])
    order = dataset.column_names + [name for name in columns if name not in dataset.column_names]
    return concatenate_datasets([kept, new], axis=1).select_columns(order)


def _label_feature(features: Features, label_column: str) -> ClassLabel | Value:
    if label_column not in features:
        raise ValueError(
            f"`label_column`={label_column!r} is not a column of the dataset, whose columns are {list(features)}; "
            "pass the name of the label column."
        )
    feature = features[label_column]
    if not (isinstance(feature, ClassLabel) or (isinstance(feature, Value) and pa.types.is_integer(feature.pa_type))):
        raise TypeError(
            f"`label_column`={label_column!r} has feature {feature}, not integer class ids; cast it first, e.g. "
            f"dataset.class_encode_column({label_column!r}) for string labels."
        )
    return feature


def _num_classes(
    feature: ClassLabel | Value | None, num_classes: int | None, transition_matrix: Any, labels: np.ndarray | None
) -> int:
    """`num_classes` given, else a ClassLabel's, else the transition matrix's, else the largest label + 1."""
    if num_classes is not None:
        if isinstance(feature, ClassLabel) and num_classes != feature.num_classes:
            raise ValueError(
                f"`num_classes`={num_classes} but the label column is a ClassLabel of {feature.num_classes} classes; "
                "drop `num_classes` or cast the column."
            )
        return num_classes
    if isinstance(feature, ClassLabel):
        return feature.num_classes
    if transition_matrix is not None:
        return len(transition_matrix)
    if labels is None:
        raise ValueError(
            "`num_classes` is needed for a stream whose label column is not a ClassLabel (its largest label is not "
            "known before the end); pass num_classes=..."
        )
    return int(labels.max(initial=-1)) + 1


def _check_labels(labels: np.ndarray, m: int, column: str) -> None:
    bad = labels[(labels < 0) | (labels >= m)]
    if bad.size:
        raise ValueError(
            f"`{column}` has {bad.size} labels outside [0, {m}) such as {int(bad[0])} (num_classes={m}); drop "
            "unlabelled rows (-1) or pass the right `num_classes`."
        )


def _transition_cdf(transition_matrix: Any, m: int) -> np.ndarray | None:
    """Validate `T` and return its row-wise CDF, shifted by the row index (see `_corrupt`)."""
    if transition_matrix is None:
        return None
    matrix = np.asarray(transition_matrix, dtype=np.float64)
    if matrix.shape != (m, m):
        raise ValueError(
            f"`transition_matrix` has shape {matrix.shape} but there are num_classes={m}; pass an {m} x {m} matrix "
            "with T[i, j] = P(noisy j | clean i)."
        )
    sums = matrix.sum(axis=1)
    if (matrix < 0).any() or not np.allclose(sums, 1.0, atol=1e-6):
        bad = np.flatnonzero((matrix < 0).any(axis=1) | ~np.isclose(sums, 1.0, atol=1e-6))
        raise ValueError(
            f"`transition_matrix` is not row-stochastic: rows {bad[:10].tolist()} have negative entries or do not "
            f"sum to 1 (sums {sums[bad[:10]].round(6).tolist()}); normalise each row, e.g. T / T.sum(1, keepdims=True)."
        )
    cdf = np.cumsum(matrix / sums[:, None], axis=1)
    cdf[:, -1] = 1.0  # no draw may fall past the last class through rounding
    return cdf + np.arange(m)[:, None]


def _corrupt(
    clean: np.ndarray,
    noise_type: str,
    noise_rate: float,
    m: int,
    cdf: np.ndarray | None,
    u_flip: np.ndarray,
    u_draw: np.ndarray,
) -> np.ndarray:
    """The per-example noise types: with probability `noise_rate` (`u_flip < p`) the label is replaced by a draw
    from `u_draw`, both uniform in [0, 1)."""
    flip = u_flip < noise_rate
    source, u = clean[flip], u_draw[flip]  # only the flipped rows are drawn for
    if noise_type == "uniform":
        drawn = np.minimum((u * m).astype(np.int64), m - 1)
    elif noise_type == "pair":
        drawn = (source + 1) % m
    else:
        # Row c of the shifted CDF lies in [c, c + 1], so one searchsorted over the flattened rows samples every
        # example from its own row without materialising an (n, m) array.
        drawn = np.minimum(np.searchsorted(cdf.ravel(), source + u, side="right") - source * m, m - 1)
    noisy = clean.copy()
    noisy[flip] = drawn
    return noisy


def _symmetric(clean: np.ndarray, noise_rate: float, m: int, rng: np.random.Generator) -> np.ndarray:
    count = round(noise_rate * len(clean))
    if count and m < 2:
        raise ValueError(f"`noise_type`='symmetric' needs at least 2 classes, there are num_classes={m}.")
    rows = rng.choice(len(clean), size=count, replace=False)
    noisy = clean.copy()
    # An offset in 1..m-1 picks one of the other m - 1 classes uniformly.
    noisy[rows] = (clean[rows] + 1 + (rng.random(count) * (m - 1)).astype(np.int64)) % m
    return noisy


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 (Steele et al., 2014): a bijective 64-bit mix; uint64 arithmetic wraps by design."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_uniform(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """A uniform [0, 1) number per `(seed, index, stream)`, independent of the order and batching of the examples."""
    key = _splitmix64(np.array([seed], dtype=np.uint64))
    bits = _splitmix64(_splitmix64(index.astype(np.uint64) * np.uint64(2) + np.uint64(stream)) ^ key)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _inject_stream(
    dataset: IterableDataset,
    noise_rate: float,
    noise_type: str,
    seed: int,
    label_column: str,
    transition_matrix: Any,
    num_classes: int | None,
    from_clean_label: bool,
) -> IterableDataset:
    if noise_type == "symmetric":
        raise ValueError(
            "`noise_type`='symmetric' changes exactly round(noise_rate * n) labels, which needs the whole label "
            "column; an IterableDataset is noised per example: use noise_type='uniform' (or a map-style Dataset)."
        )
    features = dataset.features
    feature = None if features is None else _label_feature(features, label_column)
    if features is not None:
        _check_own_columns(features, from_clean_label)
    m = _num_classes(feature, num_classes, transition_matrix, None)
    dataset = add_sample_index(dataset)
    if features is not None:
        features = Features(
            {
                **dataset.features,
                label_column: feature,
                CLEAN_LABEL_COLUMN: _ours(features.get(CLEAN_LABEL_COLUMN, feature)),
                IS_NOISY_COLUMN: _ours(Value("bool")),
            }
        )
    fn_kwargs = {
        "label_column": label_column,
        "noise_type": noise_type,
        "noise_rate": noise_rate,
        "m": m,
        "cdf": _transition_cdf(transition_matrix, m),
        "seed": seed,
        "clean_label_known": features is not None or from_clean_label,
    }
    return dataset.map(_noise_batch, batched=True, fn_kwargs=fn_kwargs, features=features)


def _noise_batch(
    batch: dict[str, list],
    label_column: str,
    noise_type: str,
    noise_rate: float,
    m: int,
    cdf: np.ndarray | None,
    seed: int,
    clean_label_known: bool,
) -> dict[str, np.ndarray]:
    if label_column not in batch:
        raise ValueError(
            f"`label_column`={label_column!r} is not in the stream's examples, whose columns are {list(batch)}; "
            "pass the name of the label column."
        )
    source = CLEAN_LABEL_COLUMN if CLEAN_LABEL_COLUMN in batch else label_column
    if source == CLEAN_LABEL_COLUMN and not clean_label_known:
        raise ValueError(
            f"The stream has a `{CLEAN_LABEL_COLUMN}` column and no features, so whether it holds this library's "
            "kept labels or the data's own cannot be told: pass `from_clean_label=True` to draw the noise from it, "
            f"or rename it first (`dataset.rename_column('{CLEAN_LABEL_COLUMN}', ...)`)."
        )
    clean = np.asarray(batch[source])
    if clean.dtype.kind not in "iu":
        raise TypeError(
            f"`label_column`={label_column!r} holds {clean.dtype} values, not integer class ids; encode them first "
            "(e.g. map them with a ClassLabel's str2int)."
        )
    clean = clean.astype(np.int64)
    _check_labels(clean, m, source)
    index = np.asarray(batch[SAMPLE_INDEX_COLUMN])
    u_flip, u_draw = _hash_uniform(seed, index, 0), _hash_uniform(seed, index, 1)
    noisy = _corrupt(clean, noise_type, noise_rate, m, cdf, u_flip, u_draw)
    return {
        label_column: noisy.tolist(),
        CLEAN_LABEL_COLUMN: clean.tolist(),
        IS_NOISY_COLUMN: (noisy != clean).tolist(),
    }
