"""Worker of tests/test_distributed.py: train a few MentorNet steps and save the weights the curriculum gave.

With `--stream OUT` or `--checkpointing OUT_DIR [CHECKPOINT]`, tests/test_faults.py's two-shard stream or
two-process checkpoints instead. Run as `python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT BATCH NORMALIZATION PER_CLASS`
(each process takes BATCH samples per step; NORMALIZATION is the `loss_normalization`, PER_CLASS 0 or 1 the
`loss_percentile_per_class`) or as `python tests/distributed_worker.py OUT BATCH NORMALIZATION PER_CLASS` (one process).
A fifth argument `mentormix` trains one step with MentorMixTrainer instead (the weights of its unmixed batch).
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from test_trainer import MLP, collate, digits, make_args, random_mentornet  # noqa: E402

from hf_mentornet.mentormix import MentorMixConfig, MentorMixTrainer  # noqa: E402
from hf_mentornet.trainer import MentorNetTrainer  # noqa: E402
from hf_mentornet.training_args import MentorNetTrainingArguments  # noqa: E402


def digits_trainer(args) -> MentorNetTrainer:
    trainer_class = MentorMixTrainer if isinstance(args, MentorMixConfig) else MentorNetTrainer
    return trainer_class(
        model=MLP(),
        args=args,
        data_collator=collate,
        train_dataset=digits(0.4, size=256),
        curriculum=random_mentornet(),
    )


def stream_indices(output: str) -> None:
    """`--stream OUT`: a 2-shard stream, noised, split over the processes; rank 0 saves every process's indices."""
    import datasets
    from datasets.distributed import split_dataset_by_node

    from hf_mentornet import inject_label_noise

    torch.distributed.init_process_group("gloo")
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    stream = datasets.Dataset.from_dict({"label": [i % 10 for i in range(200)]}).to_iterable_dataset(num_shards=2)
    stream = split_dataset_by_node(inject_label_noise(stream, 0.4, num_classes=10), rank=rank, world_size=world_size)
    indices = [example["sample_index"] for example in stream]
    gathered = [None] * world_size
    torch.distributed.all_gather_object(gathered, indices)
    if rank == 0:
        torch.save(gathered, output)
    torch.distributed.destroy_process_group()


def checkpointing(output_dir: str, resume_from: str) -> None:
    """`--checkpointing OUT_DIR [CHECKPOINT]`: 4 steps on the processes, a checkpoint every 2 (staged, renamed), from
    CHECKPOINT when given; rank 0 saves the final parameters to OUT_DIR/params.pt."""
    torch.set_num_threads(1)
    args = make_args(
        output_dir, per_device_train_batch_size=8, max_steps=4, save_strategy="steps", save_steps=2,
        example_dropout_schedule=[[0.5, 100]], label_issues=True, record_student=True,
    )  # fmt: skip
    trainer = digits_trainer(args)
    trainer.train(resume_from_checkpoint=resume_from or None)
    if trainer.is_world_process_zero():
        params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        torch.save(
            {"params": params, "records": len(trainer.student_records())}, os.path.join(output_dir, "params.pt")
        )
    torch.distributed.destroy_process_group()


def on_policy(output_dir: str, batch_size: int) -> None:
    """`--on-policy OUT_DIR BATCH`: the on-policy DD learned at the end of a 6-step burn-in on the processes; every
    rank saves its MentorNet's parameters, its percentile and the student's parameters to OUT_DIR/rank-<r>.pt."""
    import numpy as np

    torch.set_num_threads(1)
    args = make_args(
        os.path.join(output_dir, "run"), per_device_train_batch_size=batch_size, max_steps=12, burn_in_fraction=0.5,
        curriculum_update_steps=30, dd_percentiles=[0.5, 0.9], example_dropout_schedule=[[0.25, 100]],
    )  # fmt: skip
    train = digits(0.4, size=256)
    trainer = MentorNetTrainer(
        model=MLP(),
        args=args,
        data_collator=collate,
        train_dataset=train,
        curriculum=random_mentornet(),
        trusted_dataset=train.select(np.arange(0, 256, 2)),
    )
    trainer.train()
    torch.save(
        {
            "curriculum": torch.cat([p.detach().flatten() for p in trainer.curriculum.parameters()]),
            "percentile": trainer.args.loss_p_percentile,
            "student": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]),
        },
        os.path.join(output_dir, f"rank-{trainer.accelerator.process_index}.pt"),
    )
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def main() -> None:
    if sys.argv[1] == "--on-policy":
        on_policy(sys.argv[2], int(sys.argv[3]))
        return
    if sys.argv[1] == "--stream":
        stream_indices(sys.argv[2])
        return
    if sys.argv[1] == "--checkpointing":
        checkpointing(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
        return
    output, batch_size, loss_normalization, per_class = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    mentormix = sys.argv[5:] == ["mentormix"]
    torch.set_num_threads(1)
    args = make_args(
        os.path.join(os.path.dirname(output), "run"),
        MentorMixConfig if mentormix else MentorNetTrainingArguments,
        per_device_train_batch_size=batch_size,
        # MentorMix's partners are drawn within each process's batch, so only the first step's weights compare.
        max_steps=1 if mentormix else 3,
        example_dropout_schedule=[[0.5, 100]],
        loss_moving_average_decay=0.5,
        record_student=True,
        loss_normalization=loss_normalization,
        loss_percentile_per_class=per_class,
    )
    trainer = digits_trainer(args)
    trainer.train()
    if trainer.is_world_process_zero():
        records = trainer.student_records().with_format("torch")[:]
        torch.save(
            {
                "sample_index": records["sample_index"],
                "weight": records["weight"],
                "loss": records["loss"],
                "loss_moving_average": trainer._loss_moving_average,
                "params": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]),
                "world_size": trainer.accelerator.num_processes,
            },
            output,
        )
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
