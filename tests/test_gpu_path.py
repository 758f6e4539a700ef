"""The training step makes no host synchronisation that transformers' Trainer does not make.

On CUDA, torch's sync debug mode counts the real synchronisations (the test is skipped without CUDA). On the CPU, the
same comparison counts the Python-level reads of tensor values (`item`, `bool`, `int`, `float`, `tolist`, `numpy`,
`cpu`), each a host sync on a GPU: it catches a sync written in Python, not one inside a kernel or a copy."""

import contextlib
import warnings

import pytest
import torch
import torch.nn.functional as F
from test_trainer import MLP, collate, digits, random_mentornet
from transformers import Trainer, TrainingArguments

from hf_mentornet.trainer import MentorNetTrainer
from hf_mentornet.training_args import MentorNetTrainingArguments

READS = ("item", "__bool__", "__int__", "__float__", "tolist", "numpy", "cpu")
COMMON = {
    "per_device_train_batch_size": 50,  # 50 * (1 - 0.3) = 35: the dropout draws its stochastic rounding
    "learning_rate": 0.05,
    "lr_scheduler_type": "constant",
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 1000,  # no log inside the counted steps
    "seed": 0,
    "disable_tqdm": True,
    "weight_decay": 1e-3,
}
MENTORNET_SETTINGS = {
    "sgd, PD-like curriculum, example dropout, label issues, scaled weight decay": {
        "optim": "sgd",
        "example_dropout_schedule": [[0.3, 100]],
        "label_issues": True,
        "scale_weight_decay_by_mean_weight": True,
    },
    "adamw, per-class percentile, decoupled scaled decay": {
        "optim": "adamw_torch",
        "loss_percentile_per_class": True,
        "scale_weight_decay_by_mean_weight": True,
        "example_dropout_schedule": [[0.0, 100]],
    },
    "closed form": {
        "optim": "sgd",
        "curriculum_type": "closed-form",
        "closed_form_lambda1": 1.0,
        "closed_form_lambda2": 2.0,
        "example_dropout_schedule": [[0.0, 100]],
    },
}


@contextlib.contextmanager
def counted_value_reads(monkeypatch):
    """Count the Python-level reads of tensor values while the block runs."""
    counts = {"reads": 0}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    yield counts
    monkeypatch.undo()


@contextlib.contextmanager
def counted_cuda_syncs():
    """Count the synchronising CUDA operations torch's sync debug mode reports while the block runs."""
    counts = {"reads": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counts
        finally:
            torch.cuda.set_sync_debug_mode("default")
    counts["reads"] = sum("synchroniz" in str(warning.message) for warning in caught)


def train_and_count(make_trainer, counter) -> int:
    trainer = make_trainer()
    with counter() as counts:
        trainer.train()
    return counts["reads"]


def per_step(make_trainer, counter) -> float:
    """The syncs of one training step: the difference of a 7-step and a 3-step run, so that the one-time ones (the
    first batch's checks, the end of training) cancel."""
    return (train_and_count(lambda: make_trainer(7), counter) - train_and_count(lambda: make_trainer(3), counter)) / 4


def trainers(tmp_path, settings, use_cpu):
    """Makers of a plain transformers Trainer and of a MentorNetTrainer (`settings` over `COMMON`), by `max_steps`."""
    data = digits(0.4, size=400)
    settings = {**COMMON, **settings}
    plain_settings = {name: value for name, value in settings.items() if name in COMMON or name == "optim"}

    def plain(max_steps):
        args = TrainingArguments(
            str(tmp_path / f"plain-{max_steps}"), max_steps=max_steps, use_cpu=use_cpu, label_names=["labels"],
            **plain_settings,
        )  # fmt: skip
        return Trainer(
            MLP(),
            args,
            data_collator=collate,
            train_dataset=data,
            compute_loss_func=lambda logits, labels, num_items_in_batch: F.cross_entropy(logits, labels),
        )

    def mentornet(max_steps):
        args = MentorNetTrainingArguments(
            str(tmp_path / f"mentornet-{max_steps}"), max_steps=max_steps, use_cpu=use_cpu, burn_in_fraction=0.0,
            **settings,
        )  # fmt: skip
        return MentorNetTrainer(MLP(), args, data_collator=collate, train_dataset=data, curriculum=random_mentornet())

    return plain, mentornet


@pytest.mark.parametrize("name", list(MENTORNET_SETTINGS))
def test_no_value_read_in_the_step_beyond_trainers(tmp_path, monkeypatch, name):
    plain, mentornet = trainers(tmp_path, MENTORNET_SETTINGS[name], use_cpu=True)
    counter = lambda: counted_value_reads(monkeypatch)  # noqa: E731
    assert per_step(mentornet, counter) <= per_step(plain, counter)


def test_the_count_sees_a_sync(tmp_path, monkeypatch):
    """The instrument itself: an optimizer whose decay rule the trainer does not apply itself gets the scaled decay as
    a number, one read per step more than Trainer."""
    settings = {
        "optim": "rmsprop",
        "scale_weight_decay_by_mean_weight": True,
        "example_dropout_schedule": [[0.0, 100]],
    }
    plain, mentornet = trainers(tmp_path, settings, use_cpu=True)
    counter = lambda: counted_value_reads(monkeypatch)  # noqa: E731
    assert per_step(mentornet, counter) == per_step(plain, counter) + 1


@pytest.mark.parametrize("optim", ["sgd", "adamw_torch", "adamw_torch_fused"])
def test_scaled_weight_decay_on_the_device_is_the_optimizers_own(tmp_path, monkeypatch, optim):
    """The decay applied by the trainer with the mean weight as a tensor trains as the optimizer's own decay given the
    scaled value as a number."""
    settings = {"optim": optim, "scale_weight_decay_by_mean_weight": True, "example_dropout_schedule": [[0.3, 100]]}
    _, mentornet = trainers(tmp_path / "device", {**settings, "weight_decay": 0.05}, use_cpu=True)
    on_device = mentornet(5)
    on_device.train()
    monkeypatch.setattr("hf_mentornet.weighted_trainer.DEVICE_DECAY_OPTIMIZERS", ())
    _, mentornet = trainers(tmp_path / "groups", {**settings, "weight_decay": 0.05}, use_cpu=True)
    in_groups = mentornet(5)
    in_groups.train()
    assert all(group["weight_decay"] == 0.0 for group in on_device.optimizer.param_groups)
    assert any(group["weight_decay"] > 0.0 for group in in_groups.optimizer.param_groups)
    for expected, param in zip(in_groups.model.parameters(), on_device.model.parameters(), strict=True):
        torch.testing.assert_close(param, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(MENTORNET_SETTINGS))
def test_no_cuda_sync_in_the_step_beyond_trainers(tmp_path, name):
    plain, mentornet = trainers(tmp_path, MENTORNET_SETTINGS[name], use_cpu=False)
    trainer_syncs = per_step(plain, counted_cuda_syncs)
    assert per_step(mentornet, counted_cuda_syncs) <= trainer_syncs
