"""Noisy CIFAR-10 on a CPU: MentorNet against the paper's baselines (issue 6; the paper's Sec. 5.1 / Table 2
protocol, scaled down).

A 20,000-image subset of the CIFAR-10 training set gets symmetric label noise with the paper's protocol
(`uniform`: each label replaced with probability p by a uniformly drawn class, Zhang et al., 2017) at p = 0.2, 0.4,
0.8 (the noise draw is the seed); the subset is disjoint from the 5,000 images the shipped DD curricula learned from.
A small ResNet-style student (604k parameters, stride-2 stem, channels_last, fp32) is trained from scratch with every
method through the recipes' `run_experiment` (`recipes/recipe_helpers.py`), and its clean accuracy on the full 10,000-image test set is
measured after every epoch. The protocol is the CIFAR recipe's, `recipes/configs/cifar.yaml`, with one of three
CPU regimes over it (`cifar_cpu_full.yaml`, `cifar_cpu_noreg.yaml`, `cifar_cpu_memorising.yaml`):

- `full`: augmentation (pad 4, random crop, flip) + weight decay 2e-4 (scaled by the batch's mean weight,
  Appendix E.3), 40 epochs;
- `noreg`: no augmentation, no weight decay, 30 epochs;
- `memorising`: `full`'s regularisation on 5,000 images for 120 epochs (`cifar_cpu_memorising.yaml`), where plain
  training memorises the corrupted labels (`full` does not).

All: batch 128, momentum SGD 0.9, lr 0.1 x0.1 at 50%, 64.1% and 76.9% of training (the paper's steps 19.5k, 25k,
30k of 39k). Methods: plain (FullModel / NoReg), forgetting (dropout `--forgetting_drop_rate` before the classifier;
the paper tunes 0.2-0.9), self-paced, focal, reed-soft, reed-hard, s-model, co-teaching, mentornet-pd,
mentornet-dd (the shipped DD learned at the noise rate nearest the run's, as the paper learns one per rate:
`mentornet-dd`, `mentornet-dd-0.2`, `mentornet-dd-0.8`; `hf_mentornet.methods.dd_curriculum`) and oracle (trained on the uncorrupted samples only: the ceiling of a perfect
curriculum). The baselines' parameters are fixed, not tuned as in the paper: `--focal_gamma 2`, `--reed_beta 0.8`,
`--self_paced_percentile 0.5`, co-teaching's forget rate = the corrupted fraction, T_k = 10 epochs.

Reported: last and best clean test accuracy (mean over seeds) and the gap share
`(method - plain) / (oracle - plain)` on the last-epoch accuracy: the part of the distance to the oracle a method
closes (1 = as good as a perfect curriculum, 0 = no better than plain training, negative = worse). Label-issue
detection: the trainer's ranking (`label_issues`, plain and MentorNet runs) and, with `--cleanlab`, cleanlab's
`find_label_issues` on out-of-sample probabilities from `--cleanlab_folds`-fold cross-validation of plain training,
scored against the corrupted samples (precision, recall, AUROC). Every run writes
`<output_dir>/<regime>/noise-<p>/<method>/seed-<s>/run.json`; a run whose JSON exists is skipped (resumable), and
`--report` prints the tables of the finished runs only (each seed's value; an ordering counts only when it holds in
every seed), `--figures DIR` draws test accuracy and memorised share per epoch per setting. The committed runs are in
`bench/results/noisy_cifar`. Every run also measures memorisation after each epoch: the share of the corrupted
training samples the student predicts as their wrong label (`memorised_per_epoch`; `corrected_per_epoch` as their
right one), and the mean weight of right and corrupted labels per epoch. `--noise_type pair` (class c becomes c + 1:
class-dependent noise, where the wrong class is learnable) writes under `<regime>/pair-<p>/`.

Speed here (2 cores): one process trains ~830 images/s on one thread with the trainer's data pipeline, so a `noreg`
run takes ~15 minutes and two single-thread processes on disjoint settings run side by side at full speed each
(two multi-threaded processes slow each other 20-30x). bf16 autocast was slower than fp32 on this CPU (1,367 vs 1,922
images/s for the bare student step with 2 threads), so it is off unless `--bf16`. From the repository root, e.g.:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py --output_dir bench/results/noisy_cifar \
        --regimes noreg --noise_rates 0.4 --seeds 0 1 --cleanlab --threads 1 &
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py --output_dir bench/results/noisy_cifar \
        --regimes noreg --noise_rates 0.8 --seeds 0 1 --cleanlab --threads 1 &

Smoke configuration (about a minute):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/noisy_cifar.py --output_dir /tmp/noisy_cifar_smoke \
        --train_subset 500 --epochs 1 --methods plain oracle mentornet-dd --noise_rates 0.4 --seeds 0 --cleanlab
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging

from hf_mentornet import MentorNetTrainer, inject_label_noise, load_curriculum, save_curriculum
from hf_mentornet.methods import METHODS as TRAINING_METHODS
from hf_mentornet.weighted_trainer import LABEL_ISSUES_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from recipe_helpers import CONFIGS_DIR, read_yaml, run_experiment  # noqa: E402

DETECTING_METHODS = ("plain", "mentornet-pd", "mentornet-dd")  # their runs rank label issues (scored below)
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
    "mentornet-dd-onpolicy",
    "mentormix",
    "mentormix-dd-onpolicy",
    "oracle",
]
REGIMES = {
    "full": read_yaml(CONFIGS_DIR / "cifar.yaml", CONFIGS_DIR / "cifar_cpu_full.yaml"),
    "noreg": read_yaml(CONFIGS_DIR / "cifar.yaml", CONFIGS_DIR / "cifar_cpu_noreg.yaml"),
    "memorising": read_yaml(CONFIGS_DIR / "cifar.yaml", CONFIGS_DIR / "cifar_cpu_memorising.yaml"),
}
# The bench's own keys of a regime (not training arguments): the paper's augmentation, the training images.
REGIME_KEYS = ("cifar_augmentation", "train_subset")
DEFAULT_TRAIN_SUBSET = 20_000
# The baselines' parameters, fixed (the paper tunes them); each goes to the methods whose arguments take it.
BASELINE_PARAMETERS = ("focal_gamma", "reed_beta", "self_paced_percentile")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class SmallResNetConfig(PretrainedConfig):
    model_type = "bench-small-resnet"

    def __init__(
        self, widths: tuple[int, ...] = (32, 64, 128), depths: tuple[int, ...] = (1, 1, 2), stem_stride: int = 2,
        drop_rate: float = 0.0, num_channels: int = 3, **kwargs,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.widths, self.depths, self.stem_stride = list(widths), list(depths), stem_stride
        self.drop_rate, self.num_channels = drop_rate, num_channels


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
    """A small CIFAR ResNet: a 3x3 stem with stride 2, three stages of basic blocks (stride 2 between stages), global
    pooling, dropout, linear; 604k parameters by default. The stride-2 stem (16x16 feature maps from the start) is what
    makes it CPU-sized: measured here (batch 128, 2 threads, fp32, channels_last) it trains 1,922 images/s against
    487 with a stride-1 stem, and bf16 autocast is slower on this CPU for both (1,367 and 348). A transformers model
    built from a config, so `run_experiment` gives it the plain CIFAR transforms (no augmentation unless asked)."""

    config_class = SmallResNetConfig
    main_input_name = "pixel_values"

    def __init__(self, config: SmallResNetConfig) -> None:
        super().__init__(config)
        widths = config.widths
        self.stem = nn.Sequential(
            nn.Conv2d(config.num_channels, widths[0], 3, config.stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
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
    """CIFAR-10 with `train_subset` training images that the shipped `mentornet-dd` never saw: it learned from the
    first `dataset_size` images of the training set shuffled with its `seed` (its card), so the subset is the next
    `train_subset` images of that same permutation."""
    dataset = datasets.load_dataset(path)
    learned_from = load_curriculum("mentornet-dd").config.learned_from
    permutation = dataset["train"].shuffle(seed=learned_from["seed"])
    first = learned_from["dataset_size"]
    last = first + train_subset if train_subset else len(permutation)
    if last > len(permutation):
        raise ValueError(
            f"`--train_subset`={train_subset} does not fit beside the {first} images mentornet-dd learned from "
            f"({len(permutation)} training images); pass at most {len(permutation) - first} (0 = all of them)."
        )
    dataset["train"] = permutation.select(range(first, last)).flatten_indices()
    return dataset


def regime_train_subset(cli, regime: str) -> int:
    """The training images of `regime`'s runs: `--train_subset`, else the regime's, else 20,000."""
    if cli.train_subset is not None:
        return cli.train_subset
    return REGIMES[regime].get("train_subset", DEFAULT_TRAIN_SUBSET)


def student_factory(drop_rate: float = 0.0) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return SmallResNet(SmallResNetConfig(num_labels=10, drop_rate=drop_rate)).to(memory_format=torch.channels_last)

    return build


def training_settings(cli, regime: str, method: str, run_dir: str, seed: int, **overrides) -> dict:
    """The protocol's training arguments (the module docstring) for one run of `method`; `overrides` replace any of
    them."""
    protocol = {name: value for name, value in REGIMES[regime].items() if name not in REGIME_KEYS}
    accepted = {field.name for field in dataclasses.fields(TRAINING_METHODS[method].trainer_class.args_class)}
    settings = {
        **protocol,
        "output_dir": run_dir,
        "per_device_train_batch_size": cli.batch_size,
        "per_device_eval_batch_size": 500,
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": cli.bf16,
        "seed": seed,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **{name: getattr(cli, name) for name in BASELINE_PARAMETERS if name in accepted},
    }
    if cli.epochs:
        settings["num_train_epochs"] = cli.epochs
    return {**settings, **overrides}


def run_name(method: str, cli) -> str:
    return f"{method}+{cli.variant}" if cli.variant else method


def run_one(dataset, cli, regime: str, noise_rate: float, method: str, seed: int) -> dict:
    run_dir = os.path.join(cli.output_dir, regime, noise_dir(cli, noise_rate), run_name(method, cli), f"seed-{seed}")
    overrides = dict(cli.overrides)
    training_method = method
    if "curriculum" in overrides and method.startswith("mentornet-"):  # a variant's curriculum for MentorNet
        training_method = "mentornet"
    settings = training_settings(
        cli, regime, training_method, run_dir, seed, label_issues=method in DETECTING_METHODS, **overrides
    )
    factory = student_factory(cli.forgetting_drop_rate if method == "forgetting" else 0.0)
    start = time.perf_counter()
    result, trainer = run_experiment(
        dataset,
        factory,
        training_method,
        settings,
        noise_rate=noise_rate,
        noise_type=cli.noise_type,
        noise_seed=seed,
        image_column="img",
        label_column="label",
        cifar_augmentation=REGIMES[regime]["cifar_augmentation"],
        transform_kwargs={"mean": CIFAR_MEAN, "std": CIFAR_STD},
        curriculum_update_size=cli.curriculum_update_size
        if settings.get("curriculum_update_at") and not TRAINING_METHODS[training_method].on_policy
        else 0,
        trusted_size=cli.trusted_size if TRAINING_METHODS[training_method].on_policy else 0,
    )
    if TRAINING_METHODS[training_method].on_policy:
        # The curriculum the run learned, with what it was learned from: a candidate shipped DD for this regime and rate.
        learned = trainer.curriculum
        learned.config.learned_from |= {
            "student": "bench/noisy_cifar.py SmallResNet",
            "student_parameters": sum(p.numel() for p in factory().parameters()),
            "regime": regime,
            "dataset": "CIFAR-10 (uoft-cs/cifar10 schema)",
            "train_images": len(trainer.train_dataset),
            "trusted_images": len(trainer.trusted_dataset),
            "epochs": trainer.args.num_train_epochs,
            "noise_type": cli.noise_type,
            "noise_rates": [noise_rate],
            "seed": seed,
        }
        directory = os.path.join(run_dir, "curriculum")
        # The card's usage snippet loads it relative to where the bench was run (the repository root, for the committed
        # runs) rather than by this machine's absolute path; an output directory outside it keeps the absolute one.
        model_id = os.path.relpath(directory)
        if model_id.startswith(os.pardir):
            model_id = os.path.abspath(directory)
        save_curriculum(learned, directory, model_id=model_id, overwrite=True)
    curriculum = method
    if isinstance(trainer, MentorNetTrainer):
        curriculum = (
            trainer.curriculum.config.curriculum_name
            if trainer.trusted_dataset is not None
            else trainer.args.curriculum
        )
    record = {
        **result.__dict__,
        "method": run_name(method, cli),
        "curriculum": curriculum,
        "overrides": cli.overrides,
        "curriculum_update_steps": [
            entry["step"] for entry in trainer.state.log_history if "mentornet/curriculum_update" in entry
        ],
        # The on-policy DD's learnings: the step, the percentile chosen, its held-out quality on the trusted subset.
        "on_policy_learnings": [
            {key.removeprefix("mentornet/"): value for key, value in entry.items() if key.startswith("mentornet/dd_")}
            | {"step": entry["step"]}
            for entry in trainer.state.log_history
            if "mentornet/dd_percentile" in entry
        ],
        **(
            label_issue_detection(dataset, run_dir, cli.noise_type, noise_rate, seed)
            if method in DETECTING_METHODS
            else {}
        ),
        "regime": regime,
        "noise_type": cli.noise_type,
        "noise_rate": noise_rate,
        "seed": seed,
        "epochs": trainer.args.num_train_epochs,
        "train_size": len(trainer.train_dataset),
        "student_parameters": sum(p.numel() for p in factory().parameters()),
        "wall_seconds": time.perf_counter() - start,
    }
    return save_run(run_dir, record)


def noise_dir(cli, noise_rate: float) -> str:
    """`noise-<p>` for the paper's uniform noise, `<type>-<p>` for another type (`pair-0.4`)."""
    return f"{'noise' if cli.noise_type == 'uniform' else cli.noise_type}-{noise_rate:g}"


def save_run(run_dir: str, record: dict) -> dict:
    """Write `record` to `run_dir/run.json` atomically (an interrupted run leaves no JSON, so it is run again)."""
    path = os.path.join(run_dir, "run.json")
    with open(path + ".tmp", "w") as file:
        json.dump(record, file, indent=2)
    os.replace(path + ".tmp", path)
    return record


def detection_scores(truth: np.ndarray, flagged: np.ndarray, score: np.ndarray) -> dict:
    """Precision and recall of the `flagged` samples and AUROC of `score`, against the corrupted samples (`truth`)."""
    return {
        "issues_precision": float(truth[flagged].mean()) if flagged.any() else math.nan,
        "issues_recall": float(flagged[truth].mean()),
        "issues_auroc": float(roc_auc_score(truth, score)),
    }


def label_issue_detection(
    dataset: datasets.DatasetDict, run_dir: str, noise_type: str, noise_rate: float, seed: int
) -> dict:
    """Precision, recall (flagged: score > 0.5, i.e. mean weight < 0.5 or a wrong final prediction) and AUROC of the
    trainer's label-issue ranking (`run_dir/label_issues.csv`) against the samples whose label was corrupted."""
    noisy = inject_label_noise(dataset["train"], noise_rate, noise_type, seed=seed, label_column="label")
    is_noisy = np.asarray(noisy["is_noisy"], dtype=bool)[np.argsort(noisy["sample_index"])]
    ranking = pd.read_csv(os.path.join(run_dir, LABEL_ISSUES_FILE))
    truth = is_noisy[ranking["sample_index"].to_numpy()]
    return detection_scores(truth, ranking["score"].to_numpy() > 0.5, ranking["score"].to_numpy())


def cleanlab_detection(dataset: datasets.DatasetDict, cli, regime: str, noise_rate: float, seed: int) -> dict:
    """cleanlab's `find_label_issues` (and AUROC of 1 - its label quality score) given out-of-sample predicted
    probabilities from `--cleanlab_folds`-fold cross-validation: plain training of the same student with the
    regime's protocol on the other folds of the same noisy training set (the same draw as the methods' runs)."""
    from cleanlab.filter import find_label_issues  # a dev requirement: the other scripts import this one without it
    from cleanlab.rank import get_label_quality_scores

    run_dir = os.path.join(cli.output_dir, regime, noise_dir(cli, noise_rate), "cleanlab", f"seed-{seed}")
    noise_type = cli.noise_type
    start = time.perf_counter()
    noisy = inject_label_noise(dataset["train"], noise_rate, noise_type, seed=seed, label_column="label")
    given, truth = np.asarray(noisy["label"]), np.asarray(noisy["is_noisy"], dtype=bool)
    # The folds see the given labels only (a noise rate of 0 below keeps them as they are).
    given_only = noisy.remove_columns(["clean_label", "is_noisy", "sample_index"])
    pred_probs = np.zeros((len(given), 10))
    folds = StratifiedKFold(cli.cleanlab_folds, shuffle=True, random_state=seed)
    for fold, (train_rows, heldout_rows) in enumerate(folds.split(given, given)):
        split = datasets.DatasetDict(train=given_only.select(train_rows), test=given_only.select(heldout_rows))
        settings = training_settings(cli, regime, "plain", os.path.join(run_dir, f"fold-{fold}"), seed)
        _, trainer = run_experiment(
            split,
            student_factory(),
            "plain",
            settings,
            noise_rate=0.0,
            image_column="img",
            label_column="label",
            cifar_augmentation=REGIMES[regime]["cifar_augmentation"],
            transform_kwargs={"mean": CIFAR_MEAN, "std": CIFAR_STD},
        )
        pred_probs[heldout_rows] = torch.softmax(
            torch.from_numpy(trainer.predict(trainer.eval_dataset).predictions), 1
        )
    flagged = find_label_issues(given, pred_probs)
    record = {
        "method": "cleanlab",
        "regime": regime,
        "noise_type": noise_type,
        "noise_rate": noise_rate,
        "seed": seed,
        "folds": cli.cleanlab_folds,
        "cv_accuracy_on_clean_labels": float(np.mean(pred_probs.argmax(1) == np.asarray(noisy["clean_label"]))),
        **detection_scores(truth, flagged, 1.0 - get_label_quality_scores(given, pred_probs)),
        "wall_seconds": time.perf_counter() - start,
    }
    return save_run(run_dir, record)


# Orderings the tables check in every seed (a win counts only when it holds in each): the paper's Table 2 and the
# issues' goals.
ORDERINGS = (
    ("mentornet-dd", "mentornet-pd"),
    ("mentornet-pd", "plain"),
    ("mentornet-dd", "plain"),
    ("mentornet-dd", "co-teaching"),
    ("mentormix", "co-teaching"),
    ("mentormix", "mentornet-pd"),
    ("mentornet-dd-onpolicy", "mentornet-pd"),
    ("mentornet-dd-onpolicy", "co-teaching"),
    ("mentormix-dd-onpolicy", "co-teaching"),
)


def noise_type_of(record: dict) -> str:
    return record.get("noise_type", "uniform")  # the runs from before pair noise are uniform


def tables(records: list[dict], methods: list[str], noise_rates: list[float]) -> str:
    """Markdown: per regime and noise type, each seed's last accuracy, the mean best, and the gap share (mean, with
    each seed's in brackets) per method and noise rate; then which of `ORDERINGS` holds in every seed."""
    records = [record for record in records if record["method"] != "cleanlab"]  # it trains no student to score
    lines = []
    for regime, noise_type in dict.fromkeys((record["regime"], noise_type_of(record)) for record in records):
        by_key: dict[tuple[str, float], dict[int, dict]] = {}
        for record in records:
            if (record["regime"], noise_type_of(record)) == (regime, noise_type):
                by_key.setdefault((record["method"], record["noise_rate"]), {})[record["seed"]] = record
        title = regime if noise_type == "uniform" else f"{regime}, {noise_type} noise"
        header = " | ".join(f"p={rate:g} last per seed (mean best) | gap share" for rate in noise_rates)
        lines += [f"\n### {title}\n", f"| method | {header} |", "|---" * (1 + 2 * len(noise_rates)) + "|"]
        for method in dict.fromkeys([*methods, *(method for method, _ in by_key)]):
            cells = []
            for rate in noise_rates:
                runs = dict(sorted(by_key.get((method, rate), {}).items()))
                if not runs:
                    cells += ["-", "-"]
                    continue
                lasts = " / ".join(f"{run['last_accuracy']:.3f}" for run in runs.values())
                best = np.mean([run["best_accuracy"] for run in runs.values()])
                shares = []
                for seed, run in runs.items():
                    plain = by_key.get(("plain", rate), {}).get(seed)
                    oracle = by_key.get(("oracle", rate), {}).get(seed)
                    if plain and oracle and oracle["last_accuracy"] != plain["last_accuracy"]:
                        gap = oracle["last_accuracy"] - plain["last_accuracy"]
                        shares.append((run["last_accuracy"] - plain["last_accuracy"]) / gap)
                share = f"{np.mean(shares):+.2f}" if shares else "-"
                if len(shares) > 1:
                    share += " (" + " / ".join(f"{value:+.2f}" for value in shares) + ")"
                cells += [f"{lasts} ({best:.3f})", share]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        for rate in noise_rates:
            verdicts = []
            for better, worse in ORDERINGS:
                a, b = by_key.get((better, rate), {}), by_key.get((worse, rate), {})
                seeds = sorted(set(a) & set(b))
                if seeds:
                    holds = all(a[seed]["last_accuracy"] > b[seed]["last_accuracy"] for seed in seeds)
                    # the seeds both ran, named, so that one seed's ordering never reads as a win
                    seed_names = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                    verdicts.append(f"{better} {'>' if holds else 'not >'} {worse} ({seed_names})")
            if verdicts:
                lines.append(f"\np={rate:g}, in every seed both methods ran: " + "; ".join(verdicts) + ".")
    return "\n".join(lines)


def memorisation_table(records: list[dict]) -> str:
    """Markdown: per run that measured it, the share of corrupted training labels memorised at a few epochs and at
    the last, and how far the last accuracy fell from the best epoch's."""
    measured = [record for record in records if record.get("memorised_per_epoch")]
    if not measured:
        return ""
    lines = [
        "\n### memorisation: corrupted training labels predicted as their wrong label\n",
        "| regime | noise | method | seed | images x epochs | memorised at 25% / 50% / 75% / last epoch | best (epoch) "
        "| last | best - last |",
        "|---" * 9 + "|",
    ]
    for record in sorted(
        measured, key=lambda r: (r["regime"], noise_type_of(r), r["noise_rate"], r["method"], r["seed"])
    ):
        memorised, accuracy = record["memorised_per_epoch"], record["accuracy_per_epoch"]
        marks = [memorised[max(0, round(len(memorised) * share) - 1)] for share in (0.25, 0.5, 0.75, 1.0)]
        best_epoch = int(np.argmax(accuracy)) + 1
        lines.append(
            f"| {record['regime']} | {record['noise_rate']:g} {noise_type_of(record)} | {record['method']} | "
            f"{record['seed']} | {record['train_size']:,} x {record['epochs']:g} | "
            + " / ".join(f"{mark:.3f}" for mark in marks)
            + f" | {max(accuracy):.3f} ({best_epoch}) | {accuracy[-1]:.3f} | {max(accuracy) - accuracy[-1]:.3f} |"
        )
    return "\n".join(lines)


def memorisation_figures(records: list[dict], directory: str) -> list[str]:
    """Per regime, noise type and rate: test accuracy, the memorised share of the corrupted training samples and the
    mean weight of right and corrupted labels over the epochs, one colour per method (seed 0; the paper's Fig. 3).
    Only runs that measured memorisation."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    groups: dict[tuple[str, str, float], list[dict]] = {}
    for record in records:
        if record.get("memorised_per_epoch") and record["seed"] == 0:
            groups.setdefault((record["regime"], noise_type_of(record), record["noise_rate"]), []).append(record)
    paths = []
    for (regime, noise_type, rate), runs in groups.items():
        figure = Figure(figsize=(16, 4.5), layout="constrained")
        accuracy, memorised, weights = figure.subplots(1, 3)
        # tab20, not the default 10-colour cycle: a setting has up to 15 methods, and 20 colours keep them apart.
        for color, run in zip(itertools.cycle(colormaps["tab20"].colors), sorted(runs, key=lambda run: run["method"])):
            epochs = range(1, len(run["accuracy_per_epoch"]) + 1)
            accuracy.plot(epochs, run["accuracy_per_epoch"], label=run["method"], color=color)
            memorised.plot(range(1, len(run["memorised_per_epoch"]) + 1), run["memorised_per_epoch"], color=color)
            # The paper's plot: the weight a curriculum gives right (solid) and corrupted (dashed) labels over time.
            for key, style in (("mean_weight_clean_per_epoch", "-"), ("mean_weight_noisy_per_epoch", "--")):
                # Entry e - 1 is epoch e; an epoch without a logging step is NaN (left out, not a gap in the line).
                values = np.array(run.get(key) or [], dtype=float)
                logged = ~np.isnan(values)
                weights.plot(np.flatnonzero(logged) + 1, values[logged], style, color=color)
        accuracy.set(xlabel="epoch", ylabel="clean test accuracy", title="test accuracy")
        memorised.set(
            xlabel="epoch", ylabel="share of corrupted samples", ylim=(0, 1),
            title="corrupted training labels the student predicts (memorised)",
        )  # fmt: skip
        weights.set(
            xlabel="epoch", ylabel="mean weight", ylim=(0, 1.02),
            title="mean weight: right labels (solid), corrupted (dashed)",
        )  # fmt: skip
        accuracy.legend(fontsize=7)
        figure.suptitle(f"{regime}, {rate:.0%} {noise_type} noise, seed 0")
        path = os.path.join(directory, f"memorisation-{regime}-{noise_type}-{rate:g}.png")
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths


def summary(record: dict) -> str:
    if record["method"] == "cleanlab":
        scores = f"cross-validated accuracy {record['cv_accuracy_on_clean_labels']:.4f}"
    else:
        scores = f"last {record['last_accuracy']:.4f} best {record['best_accuracy']:.4f}"
    if "issues_precision" in record:  # only the DETECTING_METHODS and cleanlab rank label issues
        scores += f", issues precision {record['issues_precision']:.3f}"
    return f"{scores} ({record['wall_seconds']:.0f} s)"


def detection_table(records: list[dict], noise_rates: list[float]) -> str:
    """Markdown: per regime, label-issue detection precision / recall / AUROC against the corrupted samples."""
    lines = []
    detecting = [record for record in records if "issues_auroc" in record]
    for regime in dict.fromkeys(record["regime"] for record in detecting):
        header = " | ".join(f"p={rate:g} precision / recall / AUROC" for rate in noise_rates)
        lines += [f"\n### {regime}: label issues\n", f"| ranking | {header} |", "|---" * (1 + len(noise_rates)) + "|"]
        found = {record["method"] for record in detecting if record["regime"] == regime}
        order = [*DETECTING_METHODS, *sorted(found - {*DETECTING_METHODS, "cleanlab"}), "cleanlab"]
        for method in (method for method in order if method in found):
            cells = []
            for rate in noise_rates:
                runs = [r for r in detecting if (r["regime"], r["method"], r["noise_rate"]) == (regime, method, rate)]
                # A ranking that flags nothing has no precision: the mean is over the seeds that flagged some.
                values = [[r[f"issues_{key}"] for r in runs] for key in ("precision", "recall", "auroc")]
                means = [np.mean([v for v in vs if not np.isnan(v)] or [np.nan]) for vs in values]
                cells.append(" / ".join("–" if np.isnan(mean) else f"{mean:.3f}" for mean in means) if runs else "-")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../shared/data/cifar10"))
    parser.add_argument("--output_dir", default="runs/noisy_cifar")
    parser.add_argument(
        "--train_subset",
        type=int,
        default=None,
        help=f"Training images of every regime (default: the regime's, else {DEFAULT_TRAIN_SUBSET:,}; 0 = all).",
    )
    parser.add_argument("--noise_rates", type=float, nargs="+", default=[0.2, 0.4, 0.8])
    parser.add_argument(
        "--noise_type",
        choices=["uniform", "pair"],
        default="uniform",
        help="uniform: the paper's (a uniformly drawn class); pair: class c becomes c + 1 (class-dependent noise, "
        "runs under `<regime>/pair-<p>/`).",
    )
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
    parser.add_argument(
        "--cleanlab", action="store_true", help="Also run cleanlab's label-issue detection (cross-validation)."
    )
    parser.add_argument("--cleanlab_folds", type=int, default=3)
    parser.add_argument(
        "--variant",
        default=None,
        help="Name of a variant of the methods, for an ablation: its runs go to `<method>+<variant>`; with --overrides.",
    )
    parser.add_argument(
        "--overrides",
        type=json.loads,
        default={},
        help="JSON of training-argument overrides (of the methods' arguments classes) for --variant, e.g. '{\"loss_p_percentile\": 0.5}' or "
        '\'{"curriculum": "mentornet-dd"}\' (which curriculum the MentorNet methods use).',
    )
    parser.add_argument(
        "--curriculum_update_size",
        type=int,
        default=2_000,
        help="With a `curriculum_update_at` override: the training samples whose clean labels the data-driven "
        "update learns from (the paper's D'; 2,000 = a tenth of the training subset, as 5,000 of CIFAR-10's 50,000).",
    )
    parser.add_argument(
        "--trusted_size",
        type=int,
        default=1_000,
        help="The on-policy DD's trusted subset: training images whose clean labels it is told (5%% of the 20,000 "
        "training images; they stay in every method's training set with their given labels).",
    )
    parser.add_argument("--report", action="store_true", help="Only print the tables of the finished runs.")
    parser.add_argument(
        "--figures", default=None, help="A directory for the memorisation figures of the runs reported (seed 0)."
    )
    cli = parser.parse_args()
    if bool(cli.variant) != bool(cli.overrides):
        parser.error("--variant and --overrides go together: name the variant its overrides define.")
    torch.set_num_threads(cli.threads)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets_by_size = {}  # one CIFAR subset per training-set size the regimes use

    start = time.perf_counter()
    names = [*cli.methods, *(["cleanlab"] if cli.cleanlab else [])]
    for seed in cli.seeds:
        for regime in cli.regimes:
            size = regime_train_subset(cli, regime)
            if size not in datasets_by_size and not cli.report:
                datasets_by_size[size] = load_cifar(cli.data, size)
            dataset = datasets_by_size.get(size)
            for noise_rate in cli.noise_rates:
                for name in names:
                    run_dir = os.path.join(
                        cli.output_dir, regime, noise_dir(cli, noise_rate), name if name == "cleanlab" else
                        run_name(name, cli), f"seed-{seed}",
                    )  # fmt: skip
                    if cli.report or os.path.isfile(os.path.join(run_dir, "run.json")):
                        continue
                    if name == "cleanlab":
                        record = cleanlab_detection(dataset, cli, regime, noise_rate, seed)
                    else:
                        record = run_one(dataset, cli, regime, noise_rate, name, seed)
                    print(f"{regime} p={noise_rate:g} {record['method']} seed {seed}: {summary(record)}", flush=True)
    # The report: every finished run of these regimes, noise rates and seeds (variants and other calls' runs too).
    records = []
    for path in sorted(glob.glob(os.path.join(cli.output_dir, "*", "*-*", "*", "seed-*", "run.json"))):
        with open(path) as file:
            record = json.load(file)
        if noise_type_of(record) == cli.noise_type and (
            record["regime"],
            record["noise_rate"],
            record["seed"],
        ) in itertools.product(cli.regimes, cli.noise_rates, cli.seeds):
            records.append(record)
    print(tables(records, cli.methods, cli.noise_rates))
    print(memorisation_table(records))
    if cli.figures:
        os.makedirs(cli.figures, exist_ok=True)
        print("figures:", *memorisation_figures(records, cli.figures))
    print(detection_table(records, cli.noise_rates))
    print(f"\n{len(records)} runs, {time.perf_counter() - start:.0f} s this call.")


if __name__ == "__main__":
    main()
