"""MentorNet on controlled label noise: the paper's CIFAR protocol (Jiang et al., ICML 2018, Sec. 5.1, Table 2).

Each training label is replaced, with probability `noise_rate`, by a uniformly drawn class (Zhang et al., 2017; other
noise types: `--noise_type symmetric|pair`); the test labels stay clean. A student is trained from random
initialisation with the chosen method, and the clean test accuracy is evaluated every epoch (best and last reported;
the paper compares converged models: last).

    python recipes/cifar.py --output_dir runs/cifar10-40-dd --noise_rate 0.4 --method mentornet-dd

On many GPUs (one process per GPU; edit `num_processes` in the config):

    accelerate launch --config_file recipes/configs/multi_gpu.yaml recipes/cifar.py \
        --output_dir runs/cifar10-40-dd --noise_rate 0.4 --method mentornet-dd

Any `datasets` image dataset works: `--dataset` takes a Hub id (default `uoft-cs/cifar10`) or a local path for
`datasets.load_dataset`, with `--image_column` / `--label_column` naming its columns. All arguments can come from a
YAML file, with command-line overrides: `python recipes/cifar.py my_run.yaml --seed 1`.

Methods (`hf_mentornet.methods.METHODS`, each with its trainer and arguments: a method's own arguments, such as
`--focal_gamma`, are taken only with that method): `plain` (the FullModel baseline: the student's own regularisation, no
curriculum), `mentornet-pd`, `mentornet-dd`, the paper's baselines (Appendix E.2) `focal` (focal loss, `--focal_gamma`,
the paper tunes 1/2/3), `reed-soft` / `reed-hard` (Reed et al.'s bootstrapping, `--reed_beta`, tuned in
0.7/0.8/0.9/0.95), `self-paced` (Kumar et al.: weight 1[loss <= lambda], lambda the `--self_paced_percentile` of the
batch losses (0.5/0.6/0.75) growing 20% per epoch, `--self_paced_growth`), `s-model` (Goldberger & Ben-Reuven's noise
adaptation layer on the student, saved with it), `forgetting` (Arpit et al.: plain training of a student with dropout:
pass it in `--student_kwargs`, e.g. `'{"drop_rate": 0.5}'` for timm; the paper tunes it in 0.2-0.9), and beyond the
paper `co-teaching` (Han et al., 2018: two students, `--co_teaching_forget_rate` defaults to the corrupted fraction,
`--co_teaching_ramp_epochs` 10) and `oracle` (trained only on the samples whose label was not corrupted: the ceiling of
a perfect curriculum). `mentornet-dd` uses the shipped DD learned at the noise rate nearest the data's (the paper
learns one per rate); `mentornet` takes any curriculum: `--method mentornet --curriculum <shipped name, directory or
Hub id>` (e.g. the shipped `focal` or `self-paced` MentorNets). `mentormix` is MentorNet-guided mixup (Jiang et al.,
ICML 2020) with the `--curriculum` given (default PD), `--mentormix_alpha` (default 2, best on this project's
benchmark; the authors: 8 on CIFAR-100 at 40%) and `--mentormix_second_weighting`.

Defaults are the paper's protocol in `recipes/configs/cifar.yaml` (the resnet StudentNet, Appendix E.1): batch 128,
momentum SGD 0.9, lr 0.1 x0.1 at steps 19.5k, 25k and 30k of 39k (the same fractions of whatever length is chosen), weight decay 2e-4 scaled by the batch's
mean weight (Appendix E.3), ~100 epochs (39k steps of 128 on 50k images), augmentation pad 4 / random crop / flip.
The default student is timm's resnet18 at 32x32 (the paper's wide resnet-101 is not in timm); on a CPU pass a small
one, e.g. `--student transformers/resnet --student_kwargs '{"hidden_sizes": [32, 64, 128], "depths": [1, 1, 1]}'`.

The output directory receives `run_args.json`, `results.json` (accuracy per epoch, best, last, the curriculum's mean
weight on clean and corrupted samples), the student (`save_pretrained`), `label_issues.csv` and `weights.png` (the
mean weight of right and of corrupted labels per epoch, with the test accuracy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import datasets
import torch
from recipe_helpers import (
    CONFIGS_DIR,
    check_output_dir,
    load_dataset_dict,
    num_classes,
    parse_args,
    read_yaml,
    run_experiment,
)

from hf_mentornet.methods import METHODS
from hf_mentornet.plotting import plot_weights_over_training
from hf_mentornet.students import build_student
from hf_mentornet.weighted_trainer import WeightedLossArguments

PROTOCOL = CONFIGS_DIR / "cifar.yaml"


@dataclass
class CifarArguments:
    dataset: str = field(
        default="uoft-cs/cifar10",
        metadata={"help": "A Hub dataset id or a local path for `datasets.load_dataset` (offline: a local path)."},
    )
    image_column: str = field(default="img", metadata={"help": "The image column (`uoft-cs/cifar10`: img)."})
    label_column: str = field(default="label", metadata={"help": "The integer or ClassLabel label column."})
    train_split: str = field(default="train", metadata={"help": "The training split (its labels are corrupted)."})
    test_split: str = field(default="test", metadata={"help": "The clean evaluation split."})
    train_subset: int | None = field(
        default=None, metadata={"help": "Train on this many training images (a seeded random subset); all if unset."}
    )
    noise_rate: float = field(default=0.4, metadata={"help": "The noise fraction p (the paper: 0.2, 0.4, 0.8)."})
    noise_type: str = field(
        default="uniform",
        metadata={"help": "uniform (the paper's protocol), symmetric (exact rate), pair (asymmetric) noise."},
    )
    noise_seed: int = field(default=0, metadata={"help": "Seed of the injected noise."})
    method: str = field(
        default="mentornet-dd",
        metadata={
            "help": "The method (see the module docstring); `mentornet` uses the `--curriculum` given.",
            "choices": list(METHODS),
        },
    )
    student: str = field(
        default="timm/resnet18",
        metadata={"help": "'timm/<model>', 'transformers/<model_type>', a local checkpoint or a Hub id."},
    )
    student_kwargs: str | None = field(
        default=None, metadata={"help": "JSON of keyword arguments for the student's constructor or configuration."}
    )
    image_size: int = field(default=32, metadata={"help": "Input resolution."})
    cifar_augmentation: bool = field(
        default=True, metadata={"help": "The paper's augmentation: pad 4, random crop, horizontal flip."}
    )


def parse_cifar_args(argv: Sequence[str] | None = None) -> tuple[CifarArguments, WeightedLossArguments]:
    """The recipe's arguments: `recipes/configs/cifar.yaml`, then a YAML file given first, then the command line;
    the training arguments are those of the chosen method's trainer."""
    return parse_args(
        [CifarArguments, lambda script_args: METHODS[script_args.method].trainer_class.args_class],
        argv,
        defaults=read_yaml(PROTOCOL),
    )


def load_image_dataset(script_args: CifarArguments, seed: int) -> datasets.DatasetDict:
    columns = {"image_column": script_args.image_column, "label_column": script_args.label_column}
    dataset = load_dataset_dict(script_args.dataset, columns, script_args.train_split)
    if script_args.train_subset:
        train = dataset[script_args.train_split].shuffle(seed=seed).select(range(script_args.train_subset))
        dataset[script_args.train_split] = train.flatten_indices()
    return dataset


def main(script_args: CifarArguments, training_args: WeightedLossArguments) -> None:
    if training_args.should_save:
        check_output_dir(script_args, training_args)
    with training_args.main_process_first(desc="loading the dataset"):
        dataset = load_image_dataset(script_args, training_args.seed)
    num_labels = num_classes(dataset[script_args.train_split], script_args.label_column)
    student_kwargs = json.loads(script_args.student_kwargs) if script_args.student_kwargs else {}
    if script_args.method == "forgetting" and not any("drop" in name for name in student_kwargs):
        raise ValueError(
            f"`method`='forgetting' is plain training of a student with dropout, but `student_kwargs`={student_kwargs!r} "
            "sets none: pass e.g. --student_kwargs '{\"drop_rate\": 0.5}' for a timm student (the paper tunes it in "
            "0.2-0.9)."
        )

    def student_factory() -> torch.nn.Module:
        return build_student(script_args.student, num_labels, **student_kwargs)

    result, trainer = run_experiment(
        dataset,
        student_factory,
        script_args.method,
        training_args,
        noise_rate=script_args.noise_rate,
        noise_type=script_args.noise_type,
        noise_seed=script_args.noise_seed,
        image_column=script_args.image_column,
        label_column=script_args.label_column,
        train_split=script_args.train_split,
        test_split=script_args.test_split,
        cifar_augmentation=script_args.cifar_augmentation,
        transform_kwargs={"image_size": script_args.image_size},
    )
    trainer.save_model()
    if trainer.is_world_process_zero():
        title = f"{script_args.method}, {script_args.noise_rate:.0%} {script_args.noise_type} noise"
        plot_weights_over_training(
            trainer.state.log_history, os.path.join(training_args.output_dir, "weights.png"), title
        )
        print(
            f"{script_args.method} on {script_args.dataset} with {script_args.noise_rate:.0%} {script_args.noise_type} "
            f"noise: last accuracy {result.last_accuracy:.4f}, best {result.best_accuracy:.4f}; mean weight clean "
            f"{result.mean_weight_clean:.3f} vs corrupted {result.mean_weight_noisy:.3f}"
        )
    if torch.distributed.is_initialized():
        # Without it the gloo/NCCL teardown at interpreter exit sometimes aborts the process.
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*parse_cifar_args())
