"""MentorNet on WebVision: the paper's real-noise experiment (Jiang et al., ICML 2018, Sec. 5.2, Table 5).

Trains a StudentNet on the noisy web labels of mini-WebVision (the Google images of the first 50 classes) with a
MentorNet curriculum, and reports top-1 / top-5 accuracy on the WebVision validation set and on the ILSVRC12
validation images of the same classes. Prepare the data as described in `recipes/README.md`.

Multi-GPU (one process per GPU; edit `num_processes` in the config to your GPU count):

    accelerate launch --config_file recipes/configs/multi_gpu.yaml recipes/webvision.py \
        --data_dir /path/to/webvision --output_dir runs/webvision

Single GPU or CPU:

    python recipes/webvision.py --data_dir /path/to/webvision --output_dir runs/webvision

MentorMix (MentorNet-guided mixup, Jiang et al., ICML 2020) instead of MentorNet: `--method mentormix`
(`--mentormix_alpha`, `--mentormix_second_weighting`).

All arguments from a YAML file (the recipe's arguments plus any `MentorNetTrainingArguments`):

    accelerate launch --config_file recipes/configs/multi_gpu.yaml recipes/webvision.py recipes/configs/webvision.yaml

Defaults follow the paper where it states them: inception-resnet-v2 from random initialisation with dropout keep
probability 0.8, momentum SGD (0.9), batch 32 per process, learning rate 0.05 decayed by 0.1 every 10 epochs, weight
decay 4e-5 (Appendix E.1, stated for its ImageNet runs with the same student) scaled by the batch's mean sample
weight (Appendix E.3), and the data-driven curriculum `mentornet-dd`. Where mini-WebVision differs: the paper does
not give its training length; the recipe trains 30 epochs (decays at epochs 10 and 20), about as many epochs as its 1M-step
ImageNet run. The paper trains asynchronously on 50 GPUs; here the processes train synchronously (DDP), so the
effective batch is 32 x the number of processes. On a machine without GPUs add `--use_cpu` to train data-parallel
on the CPU (gloo): `accelerate launch --multi_gpu --num_processes 2 recipes/webvision.py ... --use_cpu`.

The output directory receives `run_args.json` (the arguments that define the run), the student
(`save_pretrained` for a transformers student, `model.safetensors` for a timm one), and `results.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from recipe_helpers import check_output_dir, parse_args

from hf_mentornet.data import MentorNetCollator, image_transforms, with_image_transform
from hf_mentornet.mentormix import MentorMixTrainer
from hf_mentornet.metrics import load_metric
from hf_mentornet.noise import add_sample_index
from hf_mentornet.students import build_student
from hf_mentornet.trainer import MentorNetTrainer
from hf_mentornet.training_args import MentorNetTrainingArguments
from hf_mentornet.webvision import load_webvision

# The methods of the recipe: MentorNet (the paper's), or MentorMix (Jiang et al., ICML 2020), with the curriculum of
# the arguments either way.
WEBVISION_METHODS = {"mentornet": MentorNetTrainer, "mentormix": MentorMixTrainer}
# The evaluation sets, as named in the results: WebVision's validation set and ILSVRC12's of the same classes.
EVAL_SETS = ("webvision_val", "ilsvrc12_val")

# The paper's optimisation (Appendix E.1), as defaults of the `MentorNetTrainingArguments` for this recipe.
TRAINING_DEFAULTS = {
    "curriculum": "mentornet-dd",
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 0.05,
    "optim": "sgd",
    "optim_args": "momentum=0.9",
    "weight_decay": 4e-5,
    # Appendix E.3: the weight decay of each step is scaled by the batch's mean sample weight.
    "scale_weight_decay_by_mean_weight": True,
    "num_train_epochs": 30,
    # The paper's step decay: x0.1 every 10 epochs (Appendix E.1), at 1/3 and 2/3 of the 30 epochs.
    "lr_decay_at": [1 / 3, 2 / 3],
    "lr_decay_factor": 0.1,
    "dataloader_num_workers": 8,
    "logging_steps": 100,
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "report_to": "none",
    # Every parameter of the default student is used; DDP's search for unused ones costs a graph traversal per step.
    "ddp_find_unused_parameters": False,
}


@dataclass
class WebVisionArguments:
    data_dir: str = field(
        metadata={
            "help": "The WebVision folder (layout in recipes/README.md), or a Hub dataset id (from the cache "
            "when offline)."
        }
    )
    method: str = field(
        default="mentornet",
        metadata={
            "help": "mentornet (the paper's), or mentormix (MentorNet-guided mixup, Jiang et al., ICML 2020; its "
            "`--mentormix_alpha` and `--mentormix_second_weighting`).",
            "choices": list(WEBVISION_METHODS),
        },
    )
    num_classes: int = field(default=50, metadata={"help": "The first N classes: 50 is mini-WebVision, 1000 all."})
    sources: list[str] = field(
        default_factory=lambda: ["google"],
        metadata={"help": "Training images: google (mini-WebVision), flickr, or both."},
    )
    splits: list[str] = field(
        default_factory=lambda: ["train", "val", "imagenet_val"],
        metadata={
            "help": "The training, WebVision validation and ILSVRC12 validation splits, in this order (the "
            "names of a Hub dataset's splits; a WebVision folder has these three)."
        },
    )
    image_column: str = field(default="image", metadata={"help": "A Hub dataset's image column."})
    label_column: str = field(default="label", metadata={"help": "A Hub dataset's integer label column."})
    student: str = field(
        default="timm/inception_resnet_v2",
        metadata={
            "help": "The StudentNet: 'timm/<model>', 'transformers/<model_type>', a local checkpoint or a "
            "Hub id (see hf_mentornet.students.build_student)."
        },
    )
    student_kwargs: dict | str | None = field(
        default='{"drop_rate": 0.2}',
        metadata={
            "help": "JSON of keyword arguments for the student's constructor (timm) or configuration "
            "(transformers). The default is the paper's dropout keep probability 0.8 for timm models; for a "
            'transformers student pass e.g. \'{"hidden_sizes": [32, 64], "depths": [1, 1]}\'.'
        },
    )
    pretrained: bool = field(
        default=False, metadata={"help": "Start from timm's pretrained weights (needs the Hub); the paper does not."}
    )
    image_size: int = field(
        default=299,
        metadata={"help": "Input resolution (inception-resnet-v2: 299, as the paper; e.g. 224 for a ViT checkpoint)."},
    )
    top_k: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": "The k of top-k accuracy."})


def parse_webvision_args(
    argv: Sequence[str] | None = None,
) -> tuple[WebVisionArguments, MentorNetTrainingArguments]:
    """The recipe's arguments: `TRAINING_DEFAULTS`, then a YAML file given first, then the command line; the
    training arguments are those of the chosen method's trainer."""
    return parse_args(
        [WebVisionArguments, lambda script_args: WEBVISION_METHODS[script_args.method].args_class],
        argv,
        defaults=TRAINING_DEFAULTS,
    )


def main(script_args: WebVisionArguments, training_args: MentorNetTrainingArguments) -> None:
    if isinstance(script_args.student_kwargs, str):
        script_args.student_kwargs = json.loads(script_args.student_kwargs)
    if len(script_args.splits) != 3:
        raise ValueError(
            f"`splits`={script_args.splits!r} must name 3 splits: training, WebVision validation, ILSVRC12 "
            "validation (e.g. --splits train val imagenet_val)."
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > training_args.world_size:
        # accelerate on a machine without GPUs starts the processes, but each would train alone on the whole data.
        raise ValueError(
            f"{launched} processes were launched but they do not form a data-parallel group (world size "
            f"{training_args.world_size}): without GPUs, pass --use_cpu to train data-parallel on the CPU (gloo)."
        )
    if training_args.should_save:
        check_output_dir(script_args, training_args)
    with training_args.main_process_first(desc="loading WebVision"):
        dataset = load_webvision(
            script_args.data_dir,
            num_classes=script_args.num_classes,
            sources=script_args.sources,
            splits=script_args.splits,
            image_column=script_args.image_column,
            label_column=script_args.label_column,
        )
    student = build_student(
        script_args.student,
        script_args.num_classes,
        pretrained=script_args.pretrained,
        **(script_args.student_kwargs or {}),
    )
    train_transform = image_transforms(student, train=True, image_size=script_args.image_size)
    eval_transform = image_transforms(student, train=False, image_size=script_args.image_size)
    train_split, *eval_splits = script_args.splits
    train_dataset = with_image_transform(add_sample_index(dataset[train_split]), train_transform)
    eval_datasets = {
        name: with_image_transform(dataset[split], eval_transform)
        for name, split in zip(EVAL_SETS, eval_splits, strict=True)
    }

    top_k = load_metric("top_k_accuracy")

    def compute_metrics(prediction) -> dict[str, float]:
        return top_k.compute(predictions=prediction.predictions, references=prediction.label_ids, k=script_args.top_k)

    trainer = WEBVISION_METHODS[script_args.method](
        model=student,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_datasets,
        data_collator=MentorNetCollator(),
        compute_metrics=compute_metrics,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    results = {"train": train_result.metrics}
    for name, eval_dataset in eval_datasets.items():
        metrics = trainer.evaluate(eval_dataset=eval_dataset, metric_key_prefix=name)
        results[name] = {key.removeprefix(f"{name}_"): value for key, value in metrics.items()}
    trainer.save_model()

    if trainer.is_world_process_zero():
        with open(os.path.join(training_args.output_dir, "results.json"), "w") as file:
            json.dump(results, file, indent=2)
        print(f"{'evaluation set':<16}" + "".join(f"{f'top-{k}':>10}" for k in script_args.top_k))
        for name in EVAL_SETS:
            print(f"{name:<16}" + "".join(f"{results[name][f'top{k}_accuracy']:>10.4f}" for k in script_args.top_k))
    if torch.distributed.is_initialized():
        # Without it the gloo/NCCL teardown at interpreter exit sometimes aborts the process.
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*parse_webvision_args())
