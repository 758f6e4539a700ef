"""Fault injection: crashes while a checkpoint is saved, damaged checkpoints, a NaN loss, samples that must not train,
reused output directories holding a user's files, and a sharded stream on two processes."""

import logging
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from test_trainer import MLP, collate, digits, make_trainer, random_mentornet
from transformers import Trainer
from transformers.trainer_callback import TrainerState

from hf_mentornet import cli, inject_label_noise, save_curriculum
from hf_mentornet.data import MentorNetCollator
from hf_mentornet.learning import learn_predefined
from hf_mentornet.weighted_trainer import WeightedLossArguments, WeightedLossTrainer

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")

CHECKPOINTING = dict(max_steps=6, save_strategy="steps", save_steps=2, save_total_limit=1, label_issues=True)


def parameters(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def files_of(directory):
    """Every file under `directory`, path -> bytes."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, directory)] = file.read()
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    trainer = make_trainer(tmp_path_factory.mktemp("uninterrupted"), **CHECKPOINTING)
    trainer.train()
    return parameters(trainer), trainer._loss_moving_average.clone()


# Each point of a checkpoint save at step 4: the trainer's own state, the model, the optimizer, the RNG states,
# Trainer's state, the rename into place, and the rotation of the old checkpoint.
CRASH_POINTS = {
    "trainer state": (WeightedLossTrainer, "_save_checkpoint_files"),
    "model": (Trainer, "save_model"),
    "optimizer": (Trainer, "_save_optimizer_and_scheduler"),
    "rng state": (Trainer, "_save_rng_state"),
    "trainer_state.json": (TrainerState, "save_to_json"),
    "rename": (os, "replace"),
    "rotation": (None, "rotate_checkpoints"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_crash_at_any_point_of_a_save_leaves_a_resumable_run(tmp_path, monkeypatch, point, uninterrupted):
    """With `save_total_limit=1` the last complete checkpoint survives, the crashed one is complete or absent, and
    `resume_from_checkpoint=True` continues to the same parameters as the run that never crashed."""
    trainer = make_trainer(tmp_path, **CHECKPOINTING)
    owner, name = CRASH_POINTS[point]
    owner = owner or sys.modules[WeightedLossTrainer.__module__]
    original = getattr(owner, name)

    def crash_at_step_4(*args, **kwargs):
        if trainer.state.global_step == 4 and (point != "rename" or "checkpoint-4" in str(args[-1])):
            raise OSError(f"disk full while saving the {point}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crash_at_step_4)
    with pytest.raises(OSError, match="disk full"):
        trainer.train()
    monkeypatch.undo()
    assert (tmp_path / "checkpoint-2" / "optimizer.pt").is_file()
    if point == "rotation":  # the new checkpoint was complete: the old one is rotated out at the next save
        assert (tmp_path / "checkpoint-4" / "mentornet_trainer_state.pt").is_file()
    else:
        assert not (tmp_path / "checkpoint-4").exists()
    resumed = make_trainer(tmp_path, **CHECKPOINTING)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 6
    final, moving_average = uninterrupted
    assert torch.allclose(parameters(resumed), final, atol=1e-6)
    assert torch.allclose(resumed._loss_moving_average, moving_average)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-6"]
    assert not (tmp_path / ".checkpoint-staging").exists()


@pytest.fixture
def checkpointed(tmp_path):
    make_trainer(tmp_path, max_steps=4, save_strategy="steps", save_steps=2).train()
    return tmp_path


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        ("truncated", "mentornet_trainer_state.pt"),
        ("garbage", "mentornet_trainer_state.pt"),
        ("missing", "mentornet_trainer_state.pt"),
        ("truncated", "model.safetensors"),
        ("truncated", "mentornet/model.safetensors"),
    ],
)
def test_a_damaged_checkpoint_is_named_with_the_way_out(checkpointed, damage, file):
    path = checkpointed / "checkpoint-4" / file
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not a torch file at all")
    else:
        path.write_bytes(path.read_bytes()[:100])
    resumed = make_trainer(checkpointed, max_steps=4)
    expected = "has no mentornet_trainer_state.pt" if damage == "missing" else "damaged or incomplete.*checkpoint-2"
    with pytest.raises(ValueError, match=expected):
        resumed.train(resume_from_checkpoint=str(checkpointed / "checkpoint-4"))


def test_resuming_with_other_settings_lists_them_and_can_be_allowed(checkpointed):
    checkpoint = str(checkpointed / "checkpoint-4")
    changed = make_trainer(checkpointed, max_steps=4, learning_rate=0.1, loss_p_percentile=0.5)
    with pytest.raises(ValueError, match=r"learning_rate: 0.05 -> 0.1; loss_p_percentile: .* -> 0.5"):
        changed.train(resume_from_checkpoint=checkpoint)
    other_curriculum = random_mentornet()
    with torch.no_grad():
        other_curriculum.fc2.bias.add_(1.0)
    with pytest.raises(ValueError, match="initial_curriculum"):
        make_trainer(checkpointed, max_steps=4, curriculum=other_curriculum).train(resume_from_checkpoint=checkpoint)
    allowed = make_trainer(checkpointed, max_steps=6, learning_rate=0.1, resume_with_different_settings=True)
    allowed.train(resume_from_checkpoint=checkpoint)
    assert allowed.state.global_step == 6


def test_the_state_file_stays_small_and_per_sample_state_has_its_own_file(tmp_path):
    sizes = {}
    for steps in (2, 8):
        make_trainer(tmp_path / str(steps), max_steps=steps, save_strategy="steps", save_steps=steps, label_issues=True,
                     record_student=True).train()  # fmt: skip
        checkpoint = tmp_path / str(steps) / f"checkpoint-{steps}"
        sizes[steps] = (checkpoint / "mentornet_trainer_state.pt").stat().st_size
        assert (checkpoint / "mentornet_per_sample_state.safetensors").is_file()
    assert sizes[8] < 20_000 and abs(sizes[8] - sizes[2]) < 2_000


def test_a_nan_loss_is_left_out_and_reported(tmp_path, caplog):
    trainer = make_trainer(tmp_path, max_steps=6, loss_moving_average_decay=0.5)
    original = trainer.training_loss

    def nan_at_step_2(logits, labels):
        losses = original(logits, labels)
        if trainer.state.global_step == 2:
            losses = losses.index_fill(0, torch.tensor([0, 3]), float("nan"))
        return losses

    trainer.training_loss = nan_at_step_2
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert torch.isfinite(trainer._loss_moving_average) and torch.isfinite(parameters(trainer)).all()
    reported = [log for log in trainer.state.log_history if "mentornet/num_nonfinite_losses" in log]
    assert [log["mentornet/num_nonfinite_losses"] for log in reported] == [2.0]
    assert "2 training losses were NaN or inf" in caplog.text


@pytest.mark.parametrize("trainer_kind", ["mentornet", "plain"])
def test_labels_of_minus_100_do_not_train(tmp_path, trainer_kind):
    """A batch with extra rows labelled -100 (transformers' ignore index) gives the loss, the gradient and the moving
    average of the batch without them."""
    data = digits(0.4, size=32)
    batch = collate([data[i] for i in range(32)])
    ignored = {key: value.clone() for key, value in batch.items()}
    ignored["labels"][16:] = -100
    kept = {key: value[:16] for key, value in batch.items()}
    results = []
    for inputs in (ignored, kept):
        if trainer_kind == "plain":
            args = WeightedLossArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
            trainer = WeightedLossTrainer(model=MLP(), args=args, data_collator=collate, train_dataset=data)
        else:
            trainer = make_trainer(tmp_path, loss_moving_average_decay=0.0, train_dataset=data)
        trainer.state.max_steps = 10
        loss = trainer.compute_loss(trainer.model, inputs, num_items_in_batch=torch.tensor(16))
        loss.backward()
        moving_average = trainer._loss_moving_average.clone() if trainer_kind == "mentornet" else torch.zeros(())
        gradient = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
        results.append((loss.detach(), gradient, moving_average, trainer._metric_logs(trainer._metrics["train"])))
    (loss, gradient, moving_average, logs), (loss_kept, gradient_kept, moving_average_kept, logs_kept) = results
    assert torch.allclose(loss, loss_kept) and torch.allclose(gradient, gradient_kept, atol=1e-6)
    assert torch.allclose(moving_average, moving_average_kept)
    assert logs == logs_kept and "mentornet/num_nonfinite_losses" not in logs
    # The trainer counts the -100 rows out of the optimizer step's number of samples, as transformers does.
    assert int(trainer._get_num_items_in_batch([ignored], torch.device("cpu"))) == 16


def test_float_labels_are_refused_not_truncated(tmp_path):
    with pytest.raises(ValueError, match="`labels` holds torch.float"):
        MentorNetCollator()([{"labels": 0.7}, {"labels": 1.0}])
    trainer = make_trainer(tmp_path)
    batch = collate([digits(size=4)[i] for i in range(4)])
    batch["labels"] = batch["labels"].float() + 0.5
    with pytest.raises(ValueError, match="`labels` must be a 1-D integer tensor"):
        trainer.compute_loss(trainer.model, batch)


def test_repeated_or_missing_sample_index_is_refused_at_init(tmp_path):
    data = digits(0.4, size=64)
    repeated = datasets.concatenate_datasets([data.select(range(32)), data.select(range(32))])
    with pytest.raises(ValueError, match="32 repeated"):
        make_trainer(tmp_path, train_dataset=repeated, label_issues=True)
    with pytest.raises(ValueError, match="no `sample_index` column.*add_sample_index"):
        make_trainer(tmp_path, train_dataset=data.remove_columns("sample_index"), record_student=True)


def test_a_reused_output_dir_keeps_every_user_file(tmp_path, monkeypatch):
    """The trainer, save_curriculum, the CLI and a second run leave a user's files byte for byte as they were."""
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "README.md").write_text("# my project")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.csv").write_text("id,label\n1,cat\n")
    user_files = files_of(tmp_path)

    make_trainer(tmp_path, label_issues=True, record_student=True).train()
    first_run = files_of(tmp_path)
    with pytest.raises(ValueError, match="holds an earlier run's .*label_issues.csv.*student_records"):
        make_trainer(tmp_path, label_issues=True, record_student=True).train()
    assert files_of(tmp_path) == first_run
    make_trainer(tmp_path, label_issues=True, record_student=True, overwrite_output_dir=True).train()

    curriculum = random_mentornet()
    with pytest.raises(ValueError, match="is not empty.*overwrite=True"):
        save_curriculum(curriculum, tmp_path)
    with pytest.raises(SystemExit, match="is not empty"):
        cli.main(["learn", "predefined", "self-paced", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="already holds"):
        cli.main(["noise", str(tmp_path / "data"), "--noise_rate", "0.2", "--output_dir", str(tmp_path)])
    save_curriculum(curriculum, tmp_path / "data", overwrite=True)  # told to: only its own three files are written
    after = files_of(tmp_path)
    assert {name: after[name] for name in user_files} == user_files
    assert sorted(set(files_of(tmp_path / "data"))) == ["README.md", "config.json", "labels.csv", "model.safetensors"]


def test_a_curriculum_that_would_be_nan_is_never_saved(tmp_path):
    with pytest.raises(ValueError, match="NaN or outside \\[0, 1\\].*gamma"):
        learn_predefined("focal", {"gamma": -1.0}, max_steps=5)
    with pytest.raises(SystemExit, match="NaN or outside"):
        cli.main(["learn", "predefined", "focal", "--param", "gamma=-1", "--output_dir", str(tmp_path / "focal")])
    assert not (tmp_path / "focal").exists()
    broken = random_mentornet()
    with torch.no_grad():
        broken.fc2.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or inf parameters"):
        save_curriculum(broken, tmp_path / "broken")
    assert not (tmp_path / "broken").exists()


def test_inject_label_noise_never_replaces_a_datasets_own_columns():
    labels = np.arange(40) % 4
    given = datasets.Dataset.from_dict({"label": labels, "clean_label": (labels + 1) % 4, "is_noisy": [True] * 40})
    with pytest.raises(ValueError, match="own \\['clean_label', 'is_noisy'\\].*from_clean_label=True"):
        inject_label_noise(given, 0.0)
    told = inject_label_noise(given, 0.0, from_clean_label=True)
    assert told["label"] == given["clean_label"] and not any(told["is_noisy"])
    ours = inject_label_noise(given.remove_columns(["clean_label", "is_noisy"]), 0.5, seed=1)
    assert inject_label_noise(ours, 0.0)["label"] == list(labels)  # our own columns: the noise is redrawn
    repeated = given.remove_columns(["clean_label", "is_noisy"]).add_column("sample_index", np.arange(40) % 20)
    with pytest.raises(ValueError, match="own `sample_index` has 20 repeated"):
        inject_label_noise(repeated, 0.2)


@pytest.mark.parametrize("argument", [["--epochs", "0"], ["--batch_size", "-1"], ["--noise_rate", "1.5"]])
def test_the_demo_refuses_settings_that_train_nothing(argument, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", *argument])
    assert exit_info.value.code == 2 and argument[0] in capsys.readouterr().err


def test_a_two_shard_stream_on_two_processes_has_unique_indices(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    output = tmp_path / "indices.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", WORKER, "--stream", str(output)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    indices = torch.load(output)
    assert len(indices) == 2 and all(len(part) == 100 for part in indices)
    every = [index for part in indices for index in part]
    assert len(set(every)) == 200  # 200 of 200 collided when each shard counted from 0


class NotATensor:
    """Anything but tensors and plain containers: a state file holding it must not be unpickled."""


def test_a_state_file_that_would_run_code_is_refused(checkpointed):
    path = checkpointed / "checkpoint-4" / "mentornet_trainer_state.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "payload": NotATensor()}, path)
    with pytest.raises(ValueError, match="damaged or incomplete"):
        make_trainer(checkpointed, max_steps=4).train(resume_from_checkpoint=str(path.parent))


def deep_library_inputs(tmp_path):
    from hf_mentornet import MentorNetTrainingArguments, load_curriculum

    trainer = make_trainer(tmp_path)
    images = torch.zeros(2, 1, 8, 8)
    curriculum = tmp_path / "curriculum"
    save_curriculum(random_mentornet(), curriculum)
    return {
        "missing pixel_values": lambda: trainer.compute_loss(trainer.model, {"image": images, "labels": torch.ones(2).long()}),
        "channel mismatch": lambda: trainer.compute_loss(trainer.model, {"pixel_values": torch.zeros(2, 3, 8, 8), "labels": torch.ones(2).long()}),
        "malformed dropout schedule": lambda: MentorNetTrainingArguments(output_dir=str(tmp_path), example_dropout_schedule="0.5,x"),
        "truncated model.safetensors": lambda: (curriculum / "model.safetensors").write_bytes(b"\0" * 8) and load_curriculum(curriculum),
        "nonexistent local dataset": lambda: cli.main(["noise", str(tmp_path / "nope"), "--noise_rate", "0.2", "--output_dir", str(tmp_path / "out")]),
        "empty dataset": lambda: inject_label_noise(datasets.Dataset.from_dict({"label": []}), 0.2),
        "string noise rate": lambda: inject_label_noise(datasets.Dataset.from_dict({"label": [0, 1]}), "0.2"),
        "negative seed": lambda: inject_label_noise(datasets.Dataset.from_dict({"label": [0, 1]}), 0.2, seed=-1),
        "float sample_index": lambda: make_trainer(tmp_path, label_issues=True, train_dataset=digits(size=32).cast_column("sample_index", datasets.Value("float32"))),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("missing pixel_values", "pixel_values"),
        ("channel mismatch", "channels"),
        ("malformed dropout schedule", "example_dropout_schedule"),
        ("truncated model.safetensors", "model.safetensors"),
        ("nonexistent local dataset", "does not exist"),
        ("empty dataset", "no rows"),
        ("string noise rate", "noise_rate"),
        ("negative seed", "seed"),
        ("float sample_index", "sample_index"),
    ],
)
def test_errors_from_deep_inside_other_libraries_become_ours(tmp_path, name, named):
    with pytest.raises((ValueError, SystemExit), match=named):
        deep_library_inputs(tmp_path)[name]()


def test_two_processes_save_complete_checkpoints_and_resume_the_same_run(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", WORKER, "--checkpointing"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for command in ([*launch, str(straight)], [*launch, str(resumed), str(straight / "checkpoint-2")]):
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in straight.iterdir() if "checkpoint" in p.name) == ["checkpoint-2", "checkpoint-4"]
    assert {p.name for p in (straight / "checkpoint-4").iterdir()} >= {
        "mentornet_trainer_state.pt", "mentornet_per_sample_state.safetensors", "rng_state_0.pth", "rng_state_1.pth"
    }  # fmt: skip
    first, second = torch.load(straight / "params.pt"), torch.load(resumed / "params.pt")
    assert torch.allclose(first["params"], second["params"], atol=1e-6)
    assert first["records"] == second["records"] == 4 * 16  # the resumed run copied the first two steps' records


def test_unverified_clean_labels_and_clean_data_give_honest_selection_metrics(tmp_path):
    """A clean label of -1 (unverified) is left out of the selection metrics; without corrupted samples there is no
    noisy-sample weight to report (it read 0, and the precision 1.0, before)."""
    data = digits(0.4, size=32)
    batch = collate([data[i] for i in range(32)])
    batch["clean_label"][16:] = -1
    args = WeightedLossArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = WeightedLossTrainer(model=MLP(), args=args, data_collator=collate, train_dataset=data)
    trainer.compute_loss(trainer.model, batch)
    logs = trainer._metric_logs(trainer._metrics["train"])
    right = (batch["labels"][:16] == batch["clean_label"][:16]).float().mean().item()  # every weight is 1 here
    assert logs["mentornet/selection_precision"] == pytest.approx(right) and right > 0.5
    assert logs["mentornet/mean_weight_clean"] == logs["mentornet/mean_weight_noisy"] == 1.0
    batch["labels"] = batch["clean_label"].clamp_min(0)
    batch["clean_label"] = batch["labels"]
    trainer._metrics["train"].clear()  # as `log` does
    trainer.compute_loss(trainer.model, batch)
    logs = trainer._metric_logs(trainer._metrics["train"])
    assert "mentornet/mean_weight_noisy" not in logs and logs["mentornet/selection_precision"] == 1.0
