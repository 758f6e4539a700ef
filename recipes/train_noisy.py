"""Train an image classifier on a dataset whose labels are already noisy (crowd-sourced or web-crawled: CIFAR-10N,
Clothing1M, Food-101N, Animal-10N, a company's crowd-labelled set), usually with a small subset of verified labels.

    python recipes/train_noisy.py --dataset my_org/crowd_labelled --label_column label \
        --verified_label_column verified_label --student google/vit-base-patch16-224-in21k \
        --method mentornet-pd --output_dir runs/crowd-pd

On many GPUs: `accelerate launch --config_file recipes/configs/multi_gpu.yaml recipes/train_noisy.py ...`.

The data:
- `--dataset`: a Hub id, a local folder `datasets.load_dataset` reads, a `save_to_disk` folder, or parquet files;
  `--image_column` / `--label_column` (the given labels, integer or `ClassLabel`; string labels: cast them to a
  `ClassLabel` first, e.g. `dataset.class_encode_column("label")`), and `--id_column` (e.g. a file name) to name the
  images in the label-issue ranking.
- verified labels, optional: `--verified_label_column`, a column of the training split holding the checked label of a
  row, missing or `--unverified_label` (default -1, never a class id) where nobody checked; and/or `--verified_split`,
  a split with both columns (used only to estimate the noise and to learn the curriculum, not trained on).
- `--eval_split`: a split with right labels to report accuracy on (e.g. CIFAR-10N's test split); none by default.

What the verified labels do: they estimate the noise rate (`noise_report.json`, with the estimated clean x given
transition matrix in `noise_transition.png`), which picks the shipped DD curriculum learned at the nearest rate
(`--method mentornet-dd`) and co-teaching's forget rate; the selection metrics (mean weight of right and wrong labels)
are measured on them; with `--curriculum_update_at 0.2 0.5` the MentorNet is re-learned from the student's losses on
them during training (the paper's data-driven update, Algorithm 1 step 6: a DD learned from the student it serves);
and the label-issue ranking is scored on them (AUROC and precision of its top, in `results.json`).

The student: `--student` is `timm/<model>` (with `--student_kwargs '{"pretrained": true}'` for timm's weights),
`transformers/<model_type>` built from its configuration, or a transformers checkpoint (Hub id or local folder) to
fine-tune. A checkpoint whose classifier head has another number of classes needs
`--student_kwargs '{"ignore_mismatched_sizes": true}'` (a new head). Its image processor (transformers) or data config
(timm) gives the transform; `--image_size` overrides it.

Fine-tuning a pretrained student: a curriculum's burn-in and example dropout are fractions made for ~100-epoch
training from scratch; give them in steps or epochs instead (`--burn_in_epochs 1`, `--example_dropout_schedule
'[[0.1, 1]]' --example_dropout_schedule_unit epochs`). `bench/RESULTS.md` "Fine-tuning" has the measured
recommendation.

The output directory receives `run_args.json`, `noise_report.json` (when labels are verified), the trained student
with its curriculum in `mentornet/` (`save_pretrained`; `--push_to_hub` uploads both), `label_issues.csv` (every
training image, most suspicious first, with `--id_column`'s value and its verified label where known),
`results.json` and `weights.png`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch
from recipe_helpers import check_output_dir, load_dataset_dict, num_classes, parse_args
from sklearn.metrics import roc_auc_score

from hf_mentornet import (
    UNVERIFIED_LABEL,
    MentorNetTrainingArguments,
    build_student,
    noise_report,
    train_method,
    with_verified_labels,
)
from hf_mentornet.methods import METHODS, RunSummary
from hf_mentornet.noise import save_noise_report
from hf_mentornet.plotting import plot_weights_over_training
from hf_mentornet.weighted_trainer import (
    LABEL_ISSUES_FILE,
    WeightedLossArguments,
    WeightedLossTrainer,
    save_atomically,
)

# The oracle trains on the rows whose label is right, which data that came noisy does not say.
NOISY_DATA_METHODS = [name for name, method in METHODS.items() if not method.clean_only]


@dataclass
class NoisyDataArguments:
    dataset: str = field(
        metadata={
            "help": "A Hub id, a local folder `datasets.load_dataset` reads, a `save_to_disk` folder, or a parquet file "
            "or folder of them."
        },
    )
    image_column: str = field(default="image", metadata={"help": "The image column."})
    label_column: str = field(
        default="label", metadata={"help": "The given (possibly wrong) labels: integer or ClassLabel."}
    )
    id_column: str | None = field(
        default=None, metadata={"help": "A column naming each image (e.g. its file name), written in the ranking."}
    )
    train_split: str = field(default="train", metadata={"help": "The training split."})
    eval_split: str | None = field(
        default=None, metadata={"help": "A split with right labels to report accuracy on; none by default."}
    )
    verified_label_column: str | None = field(
        default=None,
        metadata={"help": "The column of verified labels (missing or `unverified_label` where nobody checked)."},
    )
    unverified_label: int = field(
        default=UNVERIFIED_LABEL,
        metadata={"help": "The value of `verified_label_column` that marks an unverified row; never a class id."},
    )
    verified_split: str | None = field(
        default=None,
        metadata={
            "help": "A split with both the given and the verified labels, used only to estimate the noise and to "
            "learn the curriculum (`verified_label_column` names its verified column)."
        },
    )
    method: str = field(
        default="mentornet-pd",
        metadata={
            "help": "The method (see recipes/cifar.py); `mentornet` uses the `--curriculum` given.",
            "choices": NOISY_DATA_METHODS,
        },
    )
    student: str = field(
        default="timm/resnet18",
        metadata={"help": "'timm/<model>', 'transformers/<model_type>', or a transformers checkpoint to fine-tune."},
    )
    student_kwargs: str | None = field(
        default=None,
        metadata={
            "help": "JSON of keyword arguments for the student, e.g. '{\"pretrained\": true}' (timm) or "
            "'{\"ignore_mismatched_sizes\": true}' (a checkpoint with another head)."
        },
    )
    image_size: int | None = field(default=None, metadata={"help": "Input resolution; default: the student's."})


def parse_noisy_args(argv: Sequence[str] | None = None) -> tuple[NoisyDataArguments, WeightedLossArguments]:
    """The recipe's arguments (a YAML file given first, then the command line); the training arguments are those of
    the chosen method's trainer. The ranking is on by default (`label_issues=True`)."""
    return parse_args(
        [NoisyDataArguments, lambda script_args: METHODS[script_args.method].trainer_class.args_class],
        argv,
        defaults={"label_issues": True},
    )


def _verified(split: datasets.Dataset) -> datasets.Dataset:
    return split.select(np.flatnonzero(np.asarray(split["clean_label"]) >= 0))


def ranking_quality(ranking: pd.DataFrame) -> dict[str, float]:
    """How well the ranking finds the wrong labels among the verified rows: the AUROC of its score, and the share
    of wrong labels among the verified rows in its top (as many as the verified rows have wrong labels)."""
    verified = ranking[ranking["verified_label"] >= 0]
    wrong = (verified["label"] != verified["verified_label"]).to_numpy()
    if not len(verified) or wrong.all() or not wrong.any():
        return {}
    top = verified.head(int(wrong.sum()))  # the ranking is most suspicious first
    return {
        "ranking_auroc_on_verified": float(roc_auc_score(wrong, verified["score"])),
        "ranking_precision_at_num_wrong": float((top["label"] != top["verified_label"]).mean()),
        "num_verified": len(verified),
        "num_verified_wrong": int(wrong.sum()),
    }


def main(script_args: NoisyDataArguments, training_args: WeightedLossArguments) -> WeightedLossTrainer:
    """Train, rank and save (and push with `--push_to_hub`); returns the trainer."""
    if training_args.should_save:
        check_output_dir(script_args, training_args)
    columns = {"image_column": script_args.image_column, "label_column": script_args.label_column}
    if script_args.id_column:
        columns["id_column"] = script_args.id_column
    with training_args.main_process_first(desc="loading the dataset"):
        dataset = load_dataset_dict(script_args.dataset, columns, script_args.train_split)
    for name in ("eval_split", "verified_split"):
        split = getattr(script_args, name)
        if split is not None and split not in dataset:
            raise ValueError(f"`{name}`={split!r} is not a split of {script_args.dataset!r}: {list(dataset)}.")
    if script_args.verified_split and not script_args.verified_label_column:
        raise ValueError(
            f"`verified_split`={script_args.verified_split!r} needs `verified_label_column`, the name of its column "
            "of verified labels."
        )

    def prepared(split: str) -> datasets.Dataset:
        return with_verified_labels(
            dataset[split],
            script_args.verified_label_column,
            label_column=script_args.label_column,
            unverified_label=script_args.unverified_label,
        )

    splits = {"train": prepared(script_args.train_split)}
    if script_args.eval_split:
        splits["test"] = dataset[script_args.eval_split]
    noisy = datasets.DatasetDict(splits)
    verified_parts = [_verified(noisy["train"])] if script_args.verified_label_column else []
    verified_split = _verified(prepared(script_args.verified_split)) if script_args.verified_split else None
    if verified_split is not None:
        verified_parts.append(verified_split)
    report = None
    if verified_parts:
        keep = [script_args.label_column, "clean_label"]
        verified_rows = datasets.concatenate_datasets([part.select_columns(keep) for part in verified_parts])
        report = noise_report(verified_rows, label_column=script_args.label_column)
        if training_args.should_save:
            save_noise_report(report, training_args.output_dir)

    num_labels = num_classes(noisy["train"], script_args.label_column)
    student_kwargs = json.loads(script_args.student_kwargs) if script_args.student_kwargs else {}

    def student_factory() -> torch.nn.Module:
        return build_student(script_args.student, num_labels, **student_kwargs)

    update = {}
    if METHODS[script_args.method].on_policy:
        # The on-policy DD learns from the features the training gives the verified training rows.
        if not script_args.verified_label_column:
            raise ValueError(
                f"`--method {script_args.method}` learns its curriculum from verified rows of the training split, "
                "which it trains on: give `--verified_label_column`. A `--verified_split` alone is not trained on; "
                "with it, use `--method mentornet-dd --curriculum_update_at 0.2 0.5` (learning from the student's "
                "predictions on those rows)."
            )
        update["trusted_size"] = len(verified_parts[0])
    elif (
        isinstance(training_args, MentorNetTrainingArguments) and training_args.curriculum_update_at and verified_parts
    ):
        # The data-driven update learns from the verified rows: the separate split's, else the training split's.
        if verified_split is not None:
            update["curriculum_update_dataset"] = verified_split
        else:
            update["curriculum_update_size"] = len(verified_parts[0])
    summary, trainer = train_method(
        script_args.method,
        noisy,
        student_factory,
        training_args,
        image_column=script_args.image_column,
        label_column=script_args.label_column,
        test_split="test" if script_args.eval_split else None,
        transform_kwargs={"image_size": script_args.image_size} if script_args.image_size else None,
        corrupted_fraction=None if report is None else report["noise_rate"],
        **update,
    )
    trainer.save_model()  # the student, and for a MentorNet method its curriculum in mentornet/
    if trainer.is_world_process_zero():
        quality = {}
        if training_args.label_issues:
            quality = write_ranking_with_ids(noisy["train"], script_args, training_args.output_dir)
        results = {**vars(summary), **quality}
        if report is not None:
            results["estimated_noise_rate"] = report["noise_rate"]
        save_atomically(os.path.join(training_args.output_dir, "results.json"), partial(write_json, results))
        plot_weights_over_training(
            trainer.state.log_history, os.path.join(training_args.output_dir, "weights.png"), script_args.method
        )
        print(summary_sentence(script_args, summary, report, quality, training_args.output_dir))
    if training_args.push_to_hub:
        trainer.push_to_hub()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return trainer


def write_json(values: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(values, file, indent=2)


def write_ranking_with_ids(
    train: datasets.Dataset, script_args: NoisyDataArguments, output_dir: str
) -> dict[str, float]:
    """Add the images' ids and verified labels to the trainer's `label_issues.csv`, and score it on the verified
    rows."""
    path = os.path.join(output_dir, LABEL_ISSUES_FILE)
    ranking = pd.read_csv(path)
    wanted = ["sample_index"] + [c for c in ("clean_label",) if c in train.column_names]
    if script_args.id_column:
        wanted.append(script_args.id_column)
    rows = train.select_columns(wanted).to_pandas().set_index("sample_index")
    by_index = rows.loc[ranking["sample_index"]].reset_index(drop=True)
    if script_args.id_column:
        ranking.insert(1, script_args.id_column, by_index[script_args.id_column].to_numpy())
    verified = (
        by_index["clean_label"] if "clean_label" in by_index else pd.Series(UNVERIFIED_LABEL, index=ranking.index)
    )
    ranking["verified_label"] = verified.to_numpy()
    save_atomically(path, lambda temporary: ranking.to_csv(temporary, index=False))
    return ranking_quality(ranking)


def summary_sentence(
    script_args: NoisyDataArguments,
    summary: RunSummary,
    report: dict[str, Any] | None,
    quality: dict[str, float],
    output_dir: str,
) -> str:
    """What the run did and where its outputs are, in a few sentences."""
    lines = [f"{script_args.method} on {script_args.dataset}: the student and its curriculum are in {output_dir}."]
    if report is not None:
        lines.append(
            f"Verified labels: {report['num_samples']} rows, {report['noise_rate']:.1%} of them wrong (the estimated "
            "noise rate)."
        )
    if not math.isnan(summary.last_accuracy):
        lines.append(
            f"Accuracy on {script_args.eval_split}: {summary.last_accuracy:.4f} (best {summary.best_accuracy:.4f})."
        )
    lines.append(f"Label issues, most suspicious first: {os.path.join(output_dir, LABEL_ISSUES_FILE)}")
    if quality:
        lines.append(
            f"On the verified rows the ranking's AUROC is {quality['ranking_auroc_on_verified']:.3f}; of its top "
            f"{quality['num_verified_wrong']}, {quality['ranking_precision_at_num_wrong']:.0%} are wrong labels."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(*parse_noisy_args())
