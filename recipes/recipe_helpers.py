"""What the recipes and the benchmark share: one parser for YAML files plus command-line overrides, the CIFAR
protocol files of `recipes/configs/`, the guard that keeps an output directory to one run, and one controlled-noise
experiment (corrupt the training labels, train a method, write `results.json`)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import yaml
from torch import nn
from transformers import HfArgumentParser, TrainingArguments

from hf_mentornet import inject_label_noise
from hf_mentornet.methods import RunSummary, train_method
from hf_mentornet.weighted_trainer import (
    CONSOLE_AND_OUTPUT_ARGUMENTS,
    RUN_DEFINING_TRAINING_ARGUMENTS,
    WeightedLossArguments,
    WeightedLossTrainer,
)

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def read_yaml(*paths: str | os.PathLike) -> dict[str, Any]:
    """The settings of YAML files, later files overriding earlier ones."""
    settings: dict[str, Any] = {}
    for path in paths:
        with open(path) as file:
            settings.update(yaml.safe_load(file) or {})
    return settings


def _parse(
    dataclass_types: Sequence[type], argv: list[str], defaults: dict[str, Any], *, optional: bool = False
) -> tuple[list[Any], list[str]]:
    parser = HfArgumentParser(dataclass_types)
    known = {action.dest for action in parser._actions}
    parser.set_defaults(**{name: value for name, value in defaults.items() if name in known})
    for action in parser._actions:
        if action.dest in defaults or optional:
            action.required = False  # a YAML value is the default, the command line may still override it
    *parsed, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    return parsed, remaining


def parse_args(
    classes: Sequence[type | Callable[[Any], type]],
    argv: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    """Parse a recipe's arguments: `defaults`, then a YAML file given first (`recipe.py run.yaml ...`), then the
    command line, each overriding the one before.

    Args:
        classes: the argument dataclasses, parsed in order; an entry may instead be a function of the arguments
            parsed before it that returns the class (a recipe whose `--method` picks its trainer's arguments).
        argv: the command line (default `sys.argv[1:]`).
        defaults: the recipe's defaults (e.g. a protocol file's settings).

    Returns:
        One instance per entry of `classes`. Raises a `ValueError` naming any setting no class takes. With `-h` /
        `--help`, prints the arguments of every class (those the other arguments given select) and exits.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = dict(defaults or {})
    if argv and argv[0].endswith((".yaml", ".yml")):
        settings.update(read_yaml(argv.pop(0)))
    wants_help = bool({"-h", "--help"} & set(argv))
    argv = [arg for arg in argv if arg not in ("-h", "--help")]
    parsed, names, resolved = [], set(), []
    for entry in classes:
        cls = entry if isinstance(entry, type) else entry(*parsed)
        resolved.append(cls)
        if wants_help:
            # Only what selects the next class is parsed, nothing is required: then one help for all of them.
            if len(resolved) < len(classes):
                (value,), argv = _parse([cls], argv, settings, optional=True)
                parsed.append(value)
            continue
        (value,), argv = _parse([cls], argv, settings)
        parsed.append(value)
        names |= {f.name for f in dataclasses.fields(cls)}
    if wants_help:
        HfArgumentParser(resolved).parse_args(["--help"])  # prints and exits
    unused = [*argv, *sorted(name for name in settings if name not in names)]
    if unused:
        raise ValueError(
            f"Some arguments are not taken by {', '.join(type(value).__name__ for value in parsed)}: {unused}. "
            "Check their spelling, or whether they belong to another method's arguments."
        )
    return tuple(parsed)


def load_dataset_dict(path: str, columns: dict[str, str], train_split: str = "train") -> datasets.DatasetDict:
    """Load a dataset for a recipe: a `save_to_disk` folder, a parquet file or folder of them, a folder
    `datasets.load_dataset` reads, or a Hub id; check that `train_split` has `columns` (argument name -> column)."""
    try:
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "dataset_dict.json")):
            dataset = datasets.load_from_disk(path)
        elif os.path.isdir(path) and os.path.isfile(os.path.join(path, "dataset_info.json")):
            dataset = datasets.DatasetDict({train_split: datasets.load_from_disk(path)})
        elif path.endswith(".parquet"):
            dataset = datasets.load_dataset("parquet", data_files={train_split: path})
        else:
            dataset = datasets.load_dataset(path)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as error:
        raise ValueError(
            f"`dataset`={path!r} could not be loaded ({error}). Offline, pass a local path: a `save_to_disk` folder, "
            "a parquet file or a folder `datasets.load_dataset` reads (e.g. parquet files with an image and a label "
            "column)."
        ) from error
    if train_split not in dataset:
        raise ValueError(f"`train_split`={train_split!r} is not a split of {path!r}; its splits are {list(dataset)}.")
    names = dataset[train_split].column_names
    for argument, column in columns.items():
        if column not in names:
            raise ValueError(
                f"`{argument}`={column!r} is not a column of {path!r}; its columns are {names}. Pass --{argument} "
                "with one of them."
            )
    return dataset


def num_classes(split: datasets.Dataset, label_column: str) -> int:
    """The number of classes of a label column: its ClassLabel's, else the largest label + 1."""
    feature = split.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes
    return int(max(split[label_column])) + 1


def run_arguments(script_args: Any, training_args: TrainingArguments) -> dict[str, Any]:
    """The arguments that define what a run learns: a recipe's own arguments (a dataclass) and the training
    arguments that change the optimisation or the weighting (not output, logging, saving or resuming)."""
    own_fields = {f.name for f in dataclasses.fields(training_args)} - {
        f.name for f in dataclasses.fields(TrainingArguments)
    }
    training_fields = (own_fields | set(RUN_DEFINING_TRAINING_ARGUMENTS)) - set(CONSOLE_AND_OUTPUT_ARGUMENTS)
    training = training_args.to_dict()
    script = dataclasses.asdict(script_args)
    # A JSON round trip so that the comparison with a saved run sees the same types (lists, not tuples).
    return json.loads(json.dumps({**script, **{name: training[name] for name in sorted(training_fields)}}))


def check_output_dir(script_args: Any, training_args: WeightedLossArguments) -> None:
    """Refuse an output directory that holds a different run (its `run_args.json` differs from
    [`run_arguments`] and it left a checkpoint or results), unless `overwrite_output_dir` or resuming; then write
    this run's `run_args.json`. A run that failed before its first checkpoint left nothing to continue, so its
    `run_args.json` does not block the corrected re-run. Call it on the main process only, before any work: if it
    raises, the launcher stops the other processes."""
    current = run_arguments(script_args, training_args)
    output_dir = training_args.output_dir
    path = os.path.join(output_dir, "run_args.json")
    overwrite = training_args.overwrite_output_dir
    entries = set(os.listdir(output_dir)) if os.path.isdir(output_dir) else set()
    if os.path.isfile(path):
        with open(path) as file:
            saved = json.load(file)
        changed = sorted(name for name in saved.keys() | current.keys() if saved.get(name) != current.get(name))
        left_outputs = any(name.startswith("checkpoint-") or name == "results.json" for name in entries)
        if changed and left_outputs and not (overwrite or training_args.resume_from_checkpoint):
            differences = "; ".join(f"{name}: {saved.get(name)!r} -> {current.get(name)!r}" for name in changed)
            raise ValueError(
                f"`output_dir`={output_dir!r} holds a different run ({differences}). Pass --overwrite_output_dir to "
                "write this one there, --resume_from_checkpoint to continue it with these arguments, or choose "
                "another --output_dir."
            )
    elif entries and not overwrite:
        raise ValueError(
            f"`output_dir`={output_dir!r} is not empty and holds no run_args.json, so it is not a run of this "
            "recipe; nothing in it is touched. Pass --overwrite_output_dir to write into it anyway, or choose "
            "another --output_dir."
        )
    os.makedirs(output_dir, exist_ok=True)
    with open(path + ".tmp", "w") as file:
        json.dump(current, file, indent=2)
    os.replace(path + ".tmp", path)


def run_experiment(
    dataset: datasets.DatasetDict,
    student_factory: Callable[[], nn.Module],
    method: str,
    settings: dict[str, Any] | WeightedLossArguments,
    *,
    noise_rate: float,
    noise_type: str = "uniform",
    noise_seed: int = 0,
    image_column: str = "image",
    label_column: str = "label",
    train_split: str = "train",
    test_split: str = "test",
    **train_kwargs: Any,
) -> tuple[RunSummary, WeightedLossTrainer]:
    """Corrupt `dataset[train_split]`'s labels ([`inject_label_noise`]), train `student_factory()` with `method`
    ([`hf_mentornet.methods.train_method`], `settings` and `train_kwargs` passed on), and write the run's
    `results.json` in its `output_dir` (main process)."""
    noisy = inject_label_noise(
        dataset, noise_rate, noise_type, seed=noise_seed, label_column=label_column, splits=(train_split,)
    )
    summary, trainer = train_method(
        method,
        noisy,
        student_factory,
        settings,
        image_column=image_column,
        label_column=label_column,
        train_split=train_split,
        test_split=test_split,
        curriculum_update_seed=noise_seed,
        **train_kwargs,
    )
    if trainer.is_world_process_zero():
        summary.save(os.path.join(trainer.args.output_dir, "results.json"))
    return summary, trainer
