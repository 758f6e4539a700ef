"""The `hf-mentornet` command.

hf-mentornet demo                                   # the main job: plain vs MentorNet PD / DD on noisy MNIST
hf-mentornet learn predefined self-paced --output_dir curricula/self-paced
hf-mentornet learn records runs/x/student_records --output_dir curricula/my-dd
hf-mentornet noise ./my_dataset --noise_rate 0.4 --output_dir ./my_dataset_noisy
hf-mentornet plot mentornet-dd --output mentornet-dd.png
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Sequence

from transformers.utils import logging

logger = logging.get_logger(__name__)


def _parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _load_any_dataset(path: str):
    import datasets

    # A `save_to_disk` folder (a DatasetDict's or a Dataset's), a folder of parquet files (the trainer's student
    # records) or one; anything else goes to `load_dataset`.
    if any(os.path.isfile(os.path.join(path, name)) for name in ("dataset_dict.json", "dataset_info.json")):
        return datasets.load_from_disk(path)
    parquet_files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    if os.path.isdir(path) and parquet_files:
        return datasets.Dataset.from_parquet(parquet_files)
    if path.endswith(".parquet") and os.path.isfile(path):
        return datasets.Dataset.from_parquet(path)
    if not os.path.exists(path) and path.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{path!r} does not exist; pass a save_to_disk folder, a parquet file or folder.")
    try:
        return datasets.load_dataset(path)
    except Exception as error:  # offline Hub ids, unreadable folders: say what can be loaded
        raise ValueError(
            f"Cannot load the dataset {path!r} ({type(error).__name__}: {str(error)[:200]}). Pass a save_to_disk "
            "folder, a parquet file or a folder of them, a folder `datasets.load_dataset` reads, or a Hub id while "
            "online."
        ) from error


def _check_output_dir(path: str, overwrite: bool, ours: set[str] = frozenset()) -> None:
    """Refuse a non-empty `path` holding anything but `ours` (an earlier run's own outputs), unless `overwrite`.
    Runs before any work."""
    if os.path.isfile(path):
        raise ValueError(f"`--output_dir` {path!r} is a file; pass a directory.")
    foreign = sorted(set(os.listdir(path)) - set(ours)) if os.path.isdir(path) else []
    if foreign and not overwrite:
        raise ValueError(
            f"`--output_dir` {path!r} already holds {', '.join(foreign[:5])}, which are not outputs of an earlier run "
            "of this command; choose a new or empty directory, or pass --overwrite_output_dir to write there anyway."
        )


def _parameters(items: Sequence[str]) -> dict[str, object]:
    parameters = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"`--param {item}` must be NAME=VALUE, e.g. --param gamma=2.")
        parameters[key] = _parse_value(value)
    return parameters


def learn(args: argparse.Namespace) -> None:
    from .hub import check_curriculum_directory, save_curriculum
    from .learning import learn_from_records, learn_predefined

    check_curriculum_directory(args.output_dir, args.overwrite_output_dir)  # before the learning, not after
    if args.source == "predefined":
        model, metrics = learn_predefined(args.name, _parameters(args.param), seed=args.seed)
    else:
        model, metrics = learn_from_records(_load_any_dataset(args.name), seed=args.seed)
    path = save_curriculum(model, args.output_dir, overwrite=args.overwrite_output_dir)
    print(json.dumps({"output_dir": str(path), **metrics}, indent=2, default=str))


def noise(args: argparse.Namespace) -> None:
    from .noise import inject_label_noise, noise_report, save_noise_report

    _check_output_dir(args.output_dir, args.overwrite_output_dir)
    dataset = _load_any_dataset(args.dataset)
    noisy = inject_label_noise(
        dataset, args.noise_rate, args.noise_type, seed=args.seed, label_column=args.label_column
    )
    noisy.save_to_disk(args.output_dir)
    train = noisy["train"] if "train" in noisy else noisy
    report = noise_report(train, label_column=args.label_column)
    json_path, png_path = save_noise_report(report, args.output_dir)
    print(
        f"{report['num_noisy']} of {report['num_samples']} labels corrupted (realised noise rate "
        f"{report['noise_rate']:.3f}). Noisy dataset written to {args.output_dir}; noise report {json_path}, "
        f"transition heatmap {png_path}."
    )


def plot(args: argparse.Namespace) -> None:
    from .hub import load_curriculum
    from .plotting import plot_curriculum

    path = plot_curriculum(load_curriculum(args.curriculum), args.output, epochs=args.epochs, view=args.view)
    print(f"The curriculum's weights ({args.view}) written to {path}")


def demo(args: argparse.Namespace) -> None:
    """Inject label noise into an embedded real dataset, train the same student with plain training and with
    MentorNet PD and DD, and print clean-test accuracy and how each weighted clean vs corrupted samples."""
    import torch

    from .data import load_embedded_dataset
    from .methods import METHODS, SMALL_STUDENT_SETTINGS, train_method
    from .noise import inject_label_noise
    from .plotting import plot_curriculum, plot_weights_over_training
    from .students import build_student
    from .trainer import MentorNetTrainer

    unknown = [method for method in args.methods if method not in METHODS]
    if unknown:
        raise ValueError(f"`--methods` {unknown} are not methods; use some of {list(METHODS)}.")
    _check_output_dir(args.output_dir, args.overwrite_output_dir, ours=set(METHODS))
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dataset = load_embedded_dataset(args.dataset, seed=args.seed)
    noisy = inject_label_noise(dataset, args.noise_rate, seed=args.seed)
    num_labels = dataset["train"].features["label"].num_classes

    def student_factory() -> torch.nn.Module:
        return build_student(
            "transformers/resnet",
            num_labels,
            num_channels=1,
            embedding_size=32,
            hidden_sizes=[32, 64, 128],
            depths=[1, 1, 1],
            downsample_in_first_stage=False,
        )

    results = {}
    for method in args.methods:
        output_dir = os.path.join(args.output_dir, method)
        settings = {
            **SMALL_STUDENT_SETTINGS,
            "output_dir": output_dir,
            "num_train_epochs": args.epochs,
            "per_device_train_batch_size": args.batch_size,
            "per_device_eval_batch_size": 512,
            "learning_rate": args.learning_rate,
            "weight_decay": args.weight_decay,
            "save_strategy": "no",
            "logging_steps": 10,
            "report_to": "none",
            "seed": args.seed,
            "dataloader_num_workers": 0,
            "label_issues": True,
            "overwrite_output_dir": True,  # its own earlier results (checked above), replaced
            "use_cpu": True,
        }
        print(f"\n== {method}: training on {args.dataset} with {args.noise_rate:.0%} label noise ==", flush=True)
        result, trainer = train_method(method, noisy, student_factory, settings)
        results[method] = result
        result.save(os.path.join(output_dir, "results.json"))
        trainer.save_model(os.path.join(output_dir, "student"))
        plot_weights_over_training(trainer.state.log_history, os.path.join(output_dir, "weights.png"), title=method)
        if isinstance(trainer, MentorNetTrainer):
            plot_curriculum(trainer.curriculum, os.path.join(output_dir, "curriculum.png"))

    print(f"\nClean-test accuracy on {args.dataset} with {args.noise_rate:.0%} label noise ({args.epochs} epochs)")
    print("| method | last acc | best acc | mean weight clean | mean weight noisy | precision | recall | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for method, r in results.items():
        print(
            f"| {method} | {r.last_accuracy:.3f} | {r.best_accuracy:.3f} | {r.mean_weight_clean:.3f} | "
            f"{r.mean_weight_noisy:.3f} | {r.selection_precision:.3f} | {r.selection_recall:.3f} | "
            f"{r.train_seconds:.0f} |"
        )
    print(f"\nWall time {time.perf_counter() - start:.0f} s. Written under {os.path.abspath(args.output_dir)}:")
    for method in results:
        print(
            f"  {method}/student (the trained student), {method}/label_issues.csv, {method}/results.json, "
            f"{method}/weights.png (weights of right and corrupted labels per epoch)"
        )
        if os.path.isfile(os.path.join(args.output_dir, method, "curriculum.png")):
            print(f"  {method}/curriculum.png (the curriculum's weights)")


def _positive(kind: type, minimum: float = 0.0, strict: bool = True) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if strict else '>='} {minimum:g}")
        return value

    parse.__name__ = f"{'positive' if strict else 'non-negative'} {kind.__name__}"
    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1]")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hf-mentornet", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    # Every option has a help text, so that --help lists its default too.
    formatter = argparse.ArgumentDefaultsHelpFormatter

    p = commands.add_parser(
        "demo",
        formatter_class=formatter,
        help="The main job: MentorNet vs plain training on an embedded noisy dataset.",
    )
    p.add_argument("--dataset", default="mnist", choices=["mnist", "digits"], help="The embedded real dataset.")
    p.add_argument("--noise_rate", type=_fraction, default=0.4, help="Share of training labels redrawn at random.")
    p.add_argument(
        "--methods", nargs="+", default=["plain", "mentornet-pd", "mentornet-dd"], help="Keys of hf_mentornet.METHODS."
    )
    p.add_argument("--epochs", type=_positive(int), default=20, help="Training epochs per method.")
    p.add_argument("--batch_size", type=_positive(int), default=128, help="Training batch size.")
    p.add_argument("--learning_rate", type=_positive(float), default=0.05, help="SGD learning rate (cosine schedule).")
    p.add_argument("--weight_decay", type=_positive(float, strict=False), default=5e-4, help="SGD weight decay.")
    p.add_argument(
        "--seed", type=_positive(int, strict=False), default=0, help="Seed of the noise, split and training."
    )
    p.add_argument("--threads", type=_positive(int), default=os.cpu_count() or 1, help="torch CPU threads.")
    p.add_argument("--output_dir", default="runs/demo", help="Where each method's outputs go, in its own folder.")
    p.add_argument("--overwrite_output_dir", action="store_true", help="Write into a directory holding other files.")
    p.set_defaults(function=demo)

    p = commands.add_parser(
        "learn",
        formatter_class=formatter,
        help="Learn a MentorNet: a predefined curriculum, or data-driven from records.",
    )
    p.add_argument("source", choices=["predefined", "records"], help="What the MentorNet is learned from.")
    p.add_argument("name", help="A predefined curriculum name, or the path of student records (dataset dir/parquet).")
    p.add_argument("--param", action="append", default=[], help="Curriculum parameter, e.g. --param gamma=2.")
    p.add_argument("--seed", type=_positive(int, strict=False), default=0, help="Seed of the learning.")
    p.add_argument("--output_dir", required=True, help="A new or empty directory for the curriculum.")
    p.add_argument("--overwrite_output_dir", action="store_true", help="Replace the curriculum files there.")
    p.set_defaults(function=learn)

    p = commands.add_parser(
        "noise", formatter_class=formatter, help="Inject label noise into a dataset, keeping the clean labels."
    )
    p.add_argument("dataset", help="A local dataset (save_to_disk dir, parquet, or a load_dataset path / Hub id).")
    p.add_argument("--noise_rate", type=_fraction, required=True, help="The noise probability p in [0, 1].")
    p.add_argument(
        "--noise_type", default="uniform", choices=["uniform", "symmetric", "pair"], help="See hf_mentornet.noise."
    )
    p.add_argument("--label_column", default="label", help="The (integer or ClassLabel) label column.")
    p.add_argument("--seed", type=_positive(int, strict=False), default=0, help="Seed of the noise.")
    p.add_argument("--output_dir", required=True, help="A new or empty directory for the noisy dataset.")
    p.add_argument("--overwrite_output_dir", action="store_true", help="Write into a directory holding other files.")
    p.set_defaults(function=noise)

    p = commands.add_parser(
        "plot", formatter_class=formatter, help="Draw a curriculum's weights as training progresses."
    )
    p.add_argument("curriculum", help="A shipped name, a directory or a Hub id.")
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 50, 90], help="Training progress of each panel.")
    p.add_argument("--output", required=True, help="The image file to write (.png, .pdf, ...).")
    p.add_argument(
        "--view",
        default="heatmap",
        choices=["heatmap", "surface"],
        help="heatmap: weight over (loss, moving percentile) with the 0.5 contour; surface: the paper's Fig. 4.",
    )
    p.set_defaults(function=plot)

    args = parser.parse_args(argv)
    logging.set_verbosity_warning()
    import datasets

    datasets.disable_progress_bars()  # its bars are for steps of a second here; the training bar stays
    try:
        args.function(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        sys.exit(f"hf-mentornet {args.command}: error: {error}")


if __name__ == "__main__":
    main()
