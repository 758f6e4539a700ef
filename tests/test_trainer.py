"""Tests of MentorNetTrainer on scikit-learn's digits with tiny students built here."""

import glob
import math
import os

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from conftest import lay_out_as_downloaded
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from torch import nn

from hf_mentornet import MentorNetConfig, MentorNetModel
from hf_mentornet.cli import _load_any_dataset
from hf_mentornet.learning import learn_from_records, learn_predefined
from hf_mentornet.trainer import MentorNetTrainer
from hf_mentornet.training_args import MentorNetTrainingArguments


def digits(noise_rate=0.0, size=None, seed=0, start=0):
    """Digits as 1x8x8 images with `noise_rate` of the labels replaced by a different random class."""
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None][start:][:size]
    clean = data.target.astype(np.int64)[start:][:size]
    rng = np.random.default_rng(seed)
    noisy = rng.random(len(clean)) < noise_rate
    labels = np.where(noisy, (clean + rng.integers(1, 10, len(clean))) % 10, clean)
    return datasets.Dataset.from_dict(
        {
            "pixel_values": images,
            "labels": labels,
            "clean_label": clean,
            "sample_index": np.arange(len(clean)),
            "is_noisy": noisy,
        }
    ).with_format("numpy")


def collate(features):
    return {key: torch.as_tensor(np.stack([f[key] for f in features])) for key in features[0]}


class MLP(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, pixel_values):
        return self.net(pixel_values)


def random_mentornet(**config):
    torch.manual_seed(0)
    return MentorNetModel(MentorNetConfig(**config))


@pytest.fixture(scope="module")
def self_paced_mentornet():
    model, _ = learn_predefined("self-paced", num_samples=8192, max_steps=150, batch_size=512, seed=0)
    return model


def make_args(tmp_path, args_class=MentorNetTrainingArguments, **overrides):
    settings = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64,
        "max_steps": 4,
        "learning_rate": 0.05,
        "optim": "sgd",
        "lr_scheduler_type": "constant",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
        "burn_in_fraction": 0.0,
        "example_dropout_schedule": [[0.0, 100]],
        "train_sampling_strategy": "sequential",
    }
    settings.update(overrides)
    return args_class(**settings)


def make_trainer(tmp_path, model=None, curriculum=None, train_dataset=None, **overrides):
    return MentorNetTrainer(
        model=MLP() if model is None else model,
        args=make_args(tmp_path, **overrides),
        data_collator=collate,
        train_dataset=digits(0.4, size=256) if train_dataset is None else train_dataset,
        eval_dataset=digits(size=128, start=1000),
        curriculum=random_mentornet() if curriculum is None else curriculum,
    )


def batch_of(dataset, size=16):
    return collate([dataset[i] for i in range(size)])


def params_of(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_weighted_loss_is_sum_of_weighted_losses_over_batch_size(tmp_path):
    trainer = make_trainer(tmp_path, loss_moving_average_decay=0.9, loss_p_percentile=0.75)
    trainer.state.max_steps, trainer.state.global_step = 100, 37
    batch = batch_of(trainer.train_dataset)
    loss = trainer.compute_loss(trainer.model, dict(batch))

    with torch.no_grad():
        losses = F.cross_entropy(trainer.model(batch["pixel_values"]), batch["labels"], reduction="none")
        moving_average = torch.quantile(losses, 0.75)  # bias-corrected: the first step's average is its percentile
        weights = trainer.curriculum(loss=losses, loss_diff=losses - moving_average, epoch=37).weights
    assert torch.allclose(trainer._loss_moving_average, moving_average)
    assert torch.allclose(loss, (weights * losses).sum() / len(losses), atol=1e-6)
    assert not torch.allclose(loss, losses.mean())  # the weights matter


def test_weight_sum_normalization_gives_the_weighted_mean(tmp_path):
    trainer = make_trainer(
        tmp_path,
        loss_normalization="weight_sum",
        loss_moving_average_decay=0.9,
        loss_p_percentile=0.75,
        loss_moving_average_bias_correction=False,  # the zero-started average: weights far enough from 1
    )
    trainer.state.max_steps, trainer.state.global_step = 100, 37
    batch = batch_of(trainer.train_dataset)
    loss = trainer.compute_loss(trainer.model, dict(batch))

    with torch.no_grad():
        losses = F.cross_entropy(trainer.model(batch["pixel_values"]), batch["labels"], reduction="none")
        loss_diff = losses - 0.1 * torch.quantile(losses, 0.75)
        weights = trainer.curriculum(loss=losses, loss_diff=loss_diff, epoch=37).weights
    assert weights.mean() < 0.9  # far enough from 1 that the two normalizations differ
    assert torch.allclose(loss, (weights * losses).sum() / weights.sum(), atol=1e-6)
    assert not torch.allclose(loss, (weights * losses).sum() / len(losses), atol=1e-3)


def test_loss_percentile_per_class_keeps_the_easy_samples_of_a_hard_class(tmp_path, self_paced_mentornet):
    # Class 0 is hard (every loss above class 1's): the batch-wide percentile drops all of it, the per-class one keeps
    # its easier half. The self-paced curriculum weights 1[loss_diff <= 0].
    losses = torch.cat([torch.linspace(3.0, 4.0, 8), torch.linspace(0.0, 1.0, 8)])
    labels = torch.tensor([0] * 8 + [1] * 8)
    settings = {"loss_moving_average_decay": 0.0, "loss_p_percentile": 0.5}
    weights = {}
    for per_class in (False, True):
        trainer = make_trainer(
            tmp_path, curriculum=self_paced_mentornet, loss_percentile_per_class=per_class, **settings
        )
        trainer.state.max_steps, trainer.state.global_step = 100, 50
        weights[per_class] = trainer.sample_weights(weighting_batch(losses, labels), 10)
    assert torch.allclose(trainer._loss_moving_average[:2], torch.tensor([3.5, 0.5]))
    assert torch.equal(trainer._loss_moving_average[2:], torch.zeros(8))  # classes not in the batch are not moved
    assert weights[False][:8].mean() < 0.1
    assert weights[True][:3].min() > 0.8 and weights[True][5:8].max() < 0.2


def weighting_batch(losses, labels):
    """The global batch `sample_weights` sees, every sample training."""
    return {"loss": losses, "usable": torch.ones(len(losses), dtype=torch.bool), "label": labels}


@pytest.mark.parametrize("batch_size", [1, 2, 8, 20])
def test_example_dropout_keeps_the_asked_share_at_any_batch_size(tmp_path, batch_size):
    """The kept count is size * (1 - rate) stochastically rounded, at least 1: the expected share is right at small
    batches (floor kept 7 of 8 at rate 0.05, and 0 of 1: a whole run of zero weights), and no batch is dropped whole."""
    trainer = make_trainer(tmp_path, burn_in_fraction=0.0, example_dropout_schedule=[[0.05, 100]])
    trainer.state.max_steps, trainer.state.global_step = 100, 50
    kept = torch.stack([trainer._example_dropout_mask(batch_size, 0.05).sum() for _ in range(2000)]).float()
    assert kept.min() >= 1
    expected = batch_size * 0.95 if batch_size > 1 else 1.0
    assert abs(kept.mean().item() - expected) < 0.03 * batch_size
    # Rate 0.9 at batch 8: 0.8 expected, at least one kept.
    kept = torch.stack([trainer._example_dropout_mask(8, 0.9).sum() for _ in range(500)])
    assert kept.min() == 1


def test_burn_in_and_example_dropout(tmp_path):
    trainer = make_trainer(tmp_path, burn_in_fraction=0.2, example_dropout_schedule=[[0.5, 30], [0.25, 70]])
    trainer.state.max_steps = 100
    losses = torch.rand(16) * 3
    labels = torch.zeros(16, dtype=torch.long)

    trainer.state.global_step = 19  # burn-in with dropout 0.5: 8 of 16 keep weight 1
    weights = trainer.sample_weights(weighting_batch(losses, labels), 10)
    assert sorted(weights.tolist()) == [0.0] * 8 + [1.0] * 8

    trainer.state.global_step = 40  # after burn-in, dropout 0.25: 16 * 0.75 = 12 keep their MentorNet weight
    weights = trainer.sample_weights(weighting_batch(losses, labels), 10)
    assert int((weights > 0).sum()) == 12 and ((weights > 0) & (weights < 1)).any()

    # The dropout draws come from a generator seeded by args.seed: the same seed repeats them.
    again = make_trainer(tmp_path, burn_in_fraction=0.2, example_dropout_schedule=[[0.5, 30], [0.25, 70]])
    again.state.max_steps, again.state.global_step = 100, 19
    first = again.sample_weights(weighting_batch(losses, labels), 10)
    trainer._dropout_generator.manual_seed(0)
    trainer.state.global_step = 19
    assert torch.equal(first, trainer.sample_weights(weighting_batch(losses, labels), 10))


def test_curriculum_ramp_moves_the_weights_from_one_to_the_curriculums(tmp_path):
    """`curriculum_ramp_fraction`: 1 at the end of burn-in, halfway at half the ramp, the curriculum's after it."""
    losses = torch.rand(16) * 3
    labels = torch.zeros(16, dtype=torch.long)
    ramped = make_trainer(tmp_path, burn_in_fraction=0.2, curriculum_ramp_fraction=0.2)
    direct = make_trainer(tmp_path, burn_in_fraction=0.2)
    served = {}
    for trainer in (ramped, direct):
        trainer.state.max_steps = 100
        for step in (20, 30, 40, 70):  # the same calls, so the same moving average
            trainer.state.global_step = step
            served[trainer is ramped, step] = trainer.sample_weights(weighting_batch(losses, labels), 10)
    assert (served[False, 20] < 1).any() and torch.equal(served[True, 20], torch.ones(16))
    torch.testing.assert_close(served[True, 30], 1 - 0.5 * (1 - served[False, 30]))
    for step in (40, 70):
        assert torch.equal(served[True, step], served[False, step])
    for bad in (-0.1, 1.0, math.nan):
        with pytest.raises(ValueError, match=f"`curriculum_ramp_fraction`={bad!r} must be in"):
            make_args(tmp_path, curriculum_ramp_fraction=bad)


SAME_SCHEDULE_IN_THREE_UNITS = [
    # 256 samples in batches of 16: 16 steps an epoch, 32 steps in all.
    {"burn_in_fraction": 0.5, "example_dropout_schedule": [[0.5, 50], [0.25, 50]]},
    {
        "burn_in_steps": 16,
        "example_dropout_schedule": [[0.5, 16], [0.25, 1]],
        "example_dropout_schedule_unit": "steps",
    },
    {
        "burn_in_epochs": 1,
        "example_dropout_schedule": [[0.5, 1], [0.25, 1]],
        "example_dropout_schedule_unit": "epochs",
    },
]


def test_burn_in_and_dropout_schedules_in_steps_or_epochs_are_the_same_schedule(tmp_path):
    """A schedule given as fractions, in steps or in epochs is one schedule: the same weights at every step (the
    last rate of a schedule in steps / epochs holds to the end)."""
    runs = []
    for schedule in SAME_SCHEDULE_IN_THREE_UNITS:
        trainer = make_trainer(tmp_path, max_steps=32, **{"burn_in_fraction": None, **schedule})
        seen = []
        weigh = trainer.sample_weights

        def recording(batch, num_classes, trainer=trainer, seen=seen, weigh=weigh):
            weights = weigh(batch, num_classes)
            seen.append((trainer.state.global_step, weights.clone()))
            return weights

        trainer.sample_weights = recording
        trainer.train()
        assert trainer.burn_in_steps == 16
        runs.append(seen)
    for step, weights in runs[0]:
        if step < 16:  # burn-in, dropout 0.5: 8 of 16 keep weight 1
            assert sorted(weights.tolist()) == [0.0] * 8 + [1.0] * 8
        else:  # the MentorNet's weights, dropout 0.25: 12 of 16 kept
            assert int((weights > 0).sum()) == 12 and ((weights > 0) & (weights < 1)).any()
    for other in runs[1:]:
        assert [step for step, _ in other] == [step for step, _ in runs[0]]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(runs[0], other, strict=True))


def test_schedules_in_steps_or_epochs_refuse_what_they_cannot_read(tmp_path):
    with pytest.raises(ValueError, match="Burn-in is given twice"):
        make_args(tmp_path, burn_in_steps=10)  # make_args sets burn_in_fraction=0.0
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match=f"`burn_in_steps`={bad!r} must be a whole number"):
            make_args(tmp_path, burn_in_fraction=None, burn_in_steps=bad)
    with pytest.raises(ValueError, match="`burn_in_epochs`=nan"):
        make_args(tmp_path, burn_in_fraction=None, burn_in_epochs=math.nan)
    with pytest.raises(ValueError, match="no `example_dropout_schedule` is given"):
        make_args(tmp_path, example_dropout_schedule=None, example_dropout_schedule_unit="steps")
    with pytest.raises(ValueError, match="`example_dropout_schedule_unit`='minutes' is not a unit"):
        make_args(tmp_path, example_dropout_schedule_unit="minutes")
    with pytest.raises(ValueError, match="lengths positive and finite"):
        make_args(tmp_path, example_dropout_schedule=[[0.5, math.nan]], example_dropout_schedule_unit="steps")
    with pytest.raises(ValueError, match="percents positive and finite"):
        make_args(tmp_path, example_dropout_schedule=[[0.5, math.nan], [0.1, 100]])
    streaming = digits(size=32).to_iterable_dataset()
    with pytest.raises(ValueError, match="count epochs, which a `train_dataset` without a length"):
        MentorNetTrainer(
            MLP(),
            make_args(tmp_path, burn_in_fraction=None, burn_in_epochs=1.0),
            train_dataset=streaming,
            curriculum=random_mentornet(),
        )


@pytest.mark.parametrize("loss_normalization", ["batch_size", "weight_sum"])
def test_all_zero_weights_train_without_nan(tmp_path, loss_normalization):
    mentornet = random_mentornet()
    with torch.no_grad():
        mentornet.fc2.weight.zero_()
        mentornet.fc2.bias.fill_(-1e4)  # sigmoid -> exactly 0
    trainer = make_trainer(tmp_path, curriculum=mentornet, max_steps=3, loss_normalization=loss_normalization)
    before = params_of(trainer.model)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert trainer.state.global_step == 3 and losses == [0.0, 0.0, 0.0]
    assert torch.equal(before, params_of(trainer.model))  # zero gradient, no weight decay
    assert [log["mentornet/data_utilisation"] for log in trainer.state.log_history if "loss" in log] == [0.0] * 3


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    # The moving average is updated per forward pass, so take a MentorNet that ignores loss_diff: then the weights
    # do not depend on how the step's samples are split and the gradients must agree exactly.
    mentornet = random_mentornet()
    with torch.no_grad():
        mentornet.lstm.weight_ih_l0[:, 1].zero_()
        mentornet.lstm.weight_ih_l0_reverse[:, 1].zero_()
    dataset = digits(0.4, size=128)
    big = make_trainer(tmp_path / "big", curriculum=mentornet, train_dataset=dataset, per_device_train_batch_size=32)
    big.train()
    accumulated = make_trainer(
        tmp_path / "ga",
        curriculum=mentornet,
        train_dataset=dataset,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=2,
    )
    accumulated.train()
    assert torch.allclose(params_of(big.model), params_of(accumulated.model), atol=1e-6)
    big_losses = [log["loss"] for log in big.state.log_history if "loss" in log]
    accumulated_losses = [log["loss"] for log in accumulated.state.log_history if "loss" in log]
    assert np.allclose(big_losses, accumulated_losses, atol=1e-5)


def test_eval_loss_is_unweighted_cross_entropy(tmp_path):
    trainer = make_trainer(tmp_path, label_smoothing_factor=0.1)
    metrics = trainer.evaluate()
    batch = collate([trainer.eval_dataset[i] for i in range(len(trainer.eval_dataset))])
    with torch.no_grad():
        expected = F.cross_entropy(trainer.model(batch["pixel_values"]), batch["labels"]).item()
    assert metrics["eval_loss"] == pytest.approx(expected, abs=1e-5)


def test_timm_and_transformers_students_train_and_evaluate(tmp_path):
    timm = pytest.importorskip("timm")
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    students = {
        "timm": timm.create_model("resnet10t", num_classes=10, in_chans=1),
        "transformers": ResNetForImageClassification(
            ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_channels=1, num_labels=10)
        ),
    }
    for name, student in students.items():
        trainer = make_trainer(tmp_path / name, model=student, max_steps=2)
        trainer.train()
        metrics = trainer.evaluate()
        assert math.isfinite(metrics["eval_loss"]), name
        assert trainer.state.global_step == 2


def test_noisy_digits_metrics_records_and_label_issues(tmp_path, self_paced_mentornet):
    dataset = digits(0.4, size=1024)
    trainer = make_trainer(
        tmp_path,
        curriculum=self_paced_mentornet,
        train_dataset=dataset,
        per_device_train_batch_size=64,
        max_steps=240,
        learning_rate=0.01,
        optim="adamw_torch",
        logging_steps=12,
        burn_in_fraction=0.2,
        loss_moving_average_decay=0.9,
        loss_p_percentile=0.6,
        record_student=True,
        label_issues=True,
    )
    trainer.train()
    logs = [log for log in trainer.state.log_history if "mentornet/mean_weight" in log]
    for key in ("data_utilisation", "loss_moving_average", "selection_precision", "selection_recall"):
        assert f"mentornet/{key}" in logs[-1]
    after_burn_in = [log for log in logs if log["step"] > 0.3 * 240]
    clean = np.mean([log["mentornet/mean_weight_clean"] for log in after_burn_in])
    noisy = np.mean([log["mentornet/mean_weight_noisy"] for log in after_burn_in])
    print(f"mean weight after burn-in: clean {clean:.3f}, noisy {noisy:.3f}")
    assert clean > noisy + 0.1
    assert after_burn_in[-1]["mentornet/selection_precision"] > 0.6  # 60% of the labels are clean

    # The records are written in parquet chunks during training, and are not part of the checkpoint state.
    records = datasets.Dataset.from_parquet(sorted(glob.glob(os.path.join(tmp_path, "student_records", "*.parquet"))))
    assert set(records.column_names) == {
        "sample_index",
        "progress",
        "epoch",
        "label",
        "clean_label",
        "loss",
        "weight",
        "loss_diff",
        "mentornet_epoch",
        *(f"loss_diff_p{percent}" for percent in (40, 50, 60, 75, 80, 90)),
    }
    # The feature served against the trainer's p (0.6) is the records' loss_diff_p60: one moving average, one home.
    assert np.allclose(records["loss_diff"], records["loss_diff_p60"], atol=1e-6)
    assert len(records) == 240 * 64 and max(records["epoch"]) == 99
    # The CLI learns from that folder of chunks as it is; another run refuses to mix its records into it.
    assert len(_load_any_dataset(os.path.join(tmp_path, "student_records"))) == len(records)
    with pytest.raises(ValueError, match="holds an earlier run's .*student_records.*overwrite_output_dir"):
        make_trainer(tmp_path, train_dataset=dataset, record_student=True).train()

    issues = datasets.Dataset.from_csv(os.path.join(tmp_path, "label_issues.csv"))
    assert len(issues) == len(dataset) and issues["score"] == sorted(issues["score"], reverse=True)
    is_noisy = np.asarray(dataset["is_noisy"])[np.asarray(issues["sample_index"])]
    assert roc_auc_score(is_noisy, np.asarray(issues["score"])) > 0.6


@pytest.mark.parametrize("per_class", [False, True])
def test_resume_gives_the_same_run(tmp_path, per_class):
    settings = {
        "loss_percentile_per_class": per_class,
        "max_steps": 8,
        "save_strategy": "steps",
        "save_steps": 4,
        "burn_in_fraction": 0.25,
        "example_dropout_schedule": [[0.5, 50], [0.25, 50]],
        "record_student": True,
        "train_sampling_strategy": "random",
    }
    straight = make_trainer(tmp_path / "straight", **settings)
    straight.train()
    resumed = make_trainer(tmp_path / "resumed", **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-4"))
    assert os.path.isdir(tmp_path / "straight" / "checkpoint-4" / "mentornet")

    def losses(trainer):
        return [log["loss"] for log in trainer.state.log_history if "loss" in log][-4:]

    assert np.allclose(losses(straight), losses(resumed), atol=1e-6)
    assert torch.allclose(params_of(straight.model), params_of(resumed.model), atol=1e-6)
    assert torch.equal(straight._loss_moving_average, resumed._loss_moving_average)
    assert straight.student_records()[:] == resumed.student_records()[:]


@pytest.mark.parametrize("with_dataset", [False, True])
def test_curriculum_update_happens_at_the_configured_step(tmp_path, self_paced_mentornet, with_dataset):
    trainer = MentorNetTrainer(
        model=MLP(),
        args=make_args(tmp_path, max_steps=6, curriculum_update_at=[0.5], curriculum_update_steps=5),
        data_collator=collate,
        train_dataset=digits(0.4, size=128),
        curriculum=self_paced_mentornet,
        curriculum_update_dataset=digits(0.4, size=64, start=1500) if with_dataset else None,
    )
    before = params_of(trainer.curriculum)
    trainer.train()
    updates = [log for log in trainer.state.log_history if "mentornet/curriculum_update" in log]
    assert [log["step"] for log in updates] == [3]
    fit = "mentornet/update_heldout_auroc" if with_dataset else "mentornet/update_test_mse"
    assert 0.0 <= updates[0][fit] <= 1.0
    assert not torch.equal(before, params_of(trainer.curriculum))
    assert torch.equal(before, params_of(self_paced_mentornet))  # the given MentorNet is not modified


def test_data_driven_update_learns_at_the_epoch_the_mentornet_is_asked(tmp_path, self_paced_mentornet, monkeypatch):
    # With the epoch fixed after burn-in, the MentorNet is always asked at the burn-in epoch: the update's records
    # must carry that epoch, not the current one, or the re-learned weights are never the ones used.
    import hf_mentornet.trainer as trainer_module

    seen = {}

    def recording_learn(records, **kwargs):
        seen["epoch"] = np.unique(records["epoch"]).tolist()
        return learn_from_records(records, **kwargs)

    monkeypatch.setattr(trainer_module, "learn_from_records", recording_learn)
    args = make_args(
        tmp_path,
        max_steps=8,
        curriculum_update_at=[0.5],
        curriculum_update_steps=5,
        burn_in_fraction=0.25,
        fixed_epoch_after_burn_in=True,
    )
    trainer = MentorNetTrainer(
        model=MLP(),
        args=args,
        data_collator=collate,
        train_dataset=digits(0.4, size=128),
        curriculum=self_paced_mentornet,
        curriculum_update_dataset=digits(0.4, size=64, start=1500),
    )
    trainer.train()
    assert seen["epoch"] == [25]


def test_closed_form_branch_lands_on_eq7(tmp_path):
    trainer = make_trainer(
        tmp_path, curriculum_type="closed-form", closed_form_lambda1=0.2, closed_form_lambda2=2.0, max_steps=2
    )
    trainer.state.max_steps, trainer.state.global_step = 10, 5
    batch = batch_of(trainer.train_dataset)
    trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        losses = F.cross_entropy(trainer.model(batch["pixel_values"]), batch["labels"], reduction="none")
    loss_diff = losses - trainer._loss_moving_average
    expected = (1 - (loss_diff - 0.2) / 2.0).clamp(0, 1)  # Eq. 7 on loss_diff, reached in one step of 1 / lambda2
    assert torch.allclose(trainer._closed_form_weights[:16], expected, atol=1e-6)
    assert torch.equal(trainer._closed_form_weights[16:], torch.ones(256 - 16))
    trainer.train()  # and it trains end to end
    assert trainer.state.global_step == 2


def test_weight_decay_scaled_by_mean_weight(tmp_path, monkeypatch):
    # The param-group path (any optimizer); SGD / Adam / AdamW apply the same decay on the device (test_gpu_path).
    monkeypatch.setattr("hf_mentornet.weighted_trainer.DEVICE_DECAY_OPTIMIZERS", ())
    trainer = make_trainer(tmp_path, max_steps=1, weight_decay=0.1, scale_weight_decay_by_mean_weight=True)
    trainer.train()
    mean_weight = trainer.state.log_history[0]["mentornet/mean_weight"]
    decayed = [group for group in trainer.optimizer.param_groups if group["initial_weight_decay"] > 0]
    assert decayed and all(g["weight_decay"] == pytest.approx(0.1 * mean_weight) for g in decayed)


def test_model_card_is_tagged(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.train()
    trainer.create_model_card(model_name="student")
    card = open(os.path.join(tmp_path, "README.md")).read()
    assert "mentornet" in card and "noisy-labels" in card and "## Curriculum (MentorNet)" in card


def test_bad_inputs_raise_naming_the_argument(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.state.max_steps = 10
    batch = batch_of(trainer.train_dataset)
    with pytest.raises(ValueError, match="no `labels`"):
        trainer.compute_loss(trainer.model, {k: v for k, v in batch.items() if k != "labels"})
    with pytest.raises(ValueError, match="`labels` must be a 1-D integer"):
        trainer.compute_loss(trainer.model, {**batch, "labels": batch["labels"].float()})
    with pytest.raises(ValueError, match=r"`labels` must be class indices in 0\.\.9"):
        trainer.compute_loss(trainer.model, {**batch, "labels": batch["labels"] + 10})
    with pytest.raises(ValueError, match="compute_loss_func"):
        MentorNetTrainer(MLP(), make_args(tmp_path), curriculum=random_mentornet(), compute_loss_func=lambda *a: 0)
    with pytest.raises(ValueError, match="Cannot load the curriculum 'no-such-curriculum'"):
        MentorNetTrainer(MLP(), make_args(tmp_path), curriculum="no-such-curriculum")
    with pytest.raises(ValueError, match="num_steps=3"):
        MentorNetTrainer(MLP(), make_args(tmp_path), curriculum=random_mentornet(num_steps=3))
    streaming = digits(size=32).to_iterable_dataset()
    with pytest.raises(ValueError, match="`max_steps`=-1"):
        MentorNetTrainer(
            MLP(), make_args(tmp_path, max_steps=-1), train_dataset=streaming, curriculum=random_mentornet()
        )
    with pytest.raises(ValueError, match="example_dropout_schedule.*covers 90%"):
        make_args(tmp_path, example_dropout_schedule=[[0.5, 17], [0.05, 73]])
    with pytest.raises(ValueError, match="curriculum_update_at"):
        make_args(tmp_path, curriculum_update_at=[0.5, 1.2])
    with pytest.raises(ValueError, match="curriculum_type"):
        make_args(tmp_path, curriculum_type="bogus")
    with pytest.raises(ValueError, match="`loss_normalization`='mean'.*'weight_sum'"):
        make_args(tmp_path, loss_normalization="mean")
    # Settings that another setting would silently override or ignore are refused, naming both.
    with pytest.raises(ValueError, match="`curriculum_update_dataset` is given but `curriculum_update_at` is empty"):
        MentorNetTrainer(MLP(), make_args(tmp_path), curriculum=random_mentornet(), curriculum_update_dataset=digits())
    with pytest.raises(ValueError, match="`label_issues_dataset` is given but `label_issues`=False"):
        MentorNetTrainer(MLP(), make_args(tmp_path), curriculum=random_mentornet(), label_issues_dataset=digits())
    with pytest.raises(ValueError, match=r"\['closed_form_lambda1'\] set the closed-form branch"):
        make_args(tmp_path, closed_form_lambda1=0.5)
    with pytest.raises(ValueError, match="`lr_decay_at`=.*replaces `lr_scheduler_type`='constant'"):
        make_args(tmp_path, lr_decay_at=[0.5])
    with pytest.raises(ValueError, match="curriculum_name"):
        MentorNetTrainer(MLP(), make_args(tmp_path, curriculum_update_at=[0.5]), curriculum=random_mentornet())
    closed_form = make_trainer(tmp_path, curriculum_type="closed-form")
    closed_form.state.max_steps = 10
    with pytest.raises(ValueError, match="no `sample_index`"):
        closed_form.compute_loss(closed_form.model, {k: v for k, v in batch.items() if k != "sample_index"})


def test_label_issue_memory_does_not_grow_with_epochs(tmp_path):
    """The ranking keeps three running sums per training sample, not a row per (sample, step)."""
    sizes = {}
    for epochs in (1, 4):
        trainer = make_trainer(
            tmp_path / str(epochs),
            train_dataset=digits(0.4, size=256),
            num_train_epochs=epochs,
            max_steps=-1,
            label_issues=True,
        )
        trainer.train()
        aggregates = trainer._label_issue_aggregates
        sizes[epochs] = aggregates.nbytes
        assert int(aggregates.count.sum()) > 0 and os.path.isfile(tmp_path / str(epochs) / "label_issues.csv")
    print(f"label-issue aggregates: {sizes[1]} bytes after 1 epoch, {sizes[4]} after 4 (256 samples)")
    assert sizes[1] == sizes[4] <= 256 * 3 * 8 * 2


def test_the_standard_hf_pipeline_works_unchanged(tmp_path):
    """A user's own `with_transform`, `DefaultDataCollator`, Trainer's default `remove_unused_columns=True` and a
    transformers ViT built from its config: training, evaluation and the label-issue ranking run."""
    from transformers import DefaultDataCollator, ViTConfig, ViTForImageClassification

    from hf_mentornet import inject_label_noise

    data = load_digits()
    images = [PIL.Image.fromarray((image * 255 / 16).astype(np.uint8)) for image in data.images[:96]]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    dataset = datasets.Dataset.from_dict({"image": images, "label": data.target[:96].tolist()}, features=features)
    noisy = inject_label_noise(dataset, 0.3, seed=0)

    def transform(batch):  # what a transformers user writes: images to pixel_values, the rest passed on
        pixels = [torch.tensor(np.asarray(image, dtype=np.float32) / 255.0)[None] for image in batch["image"]]
        return {"pixel_values": pixels, "labels": batch["label"], "sample_index": batch["sample_index"],
                "clean_label": batch["clean_label"], "is_noisy": batch["is_noisy"]}  # fmt: skip

    student = ViTForImageClassification(
        ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                  num_attention_heads=2, intermediate_size=16, num_labels=10)
    )  # fmt: skip
    args = MentorNetTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=4, report_to="none", use_cpu=True,
        eval_strategy="steps", eval_steps=4, label_issues=True, disable_tqdm=True,
    )  # fmt: skip
    assert args.remove_unused_columns  # transformers' default
    trainer = MentorNetTrainer(
        model=student,
        args=args,
        train_dataset=noisy.with_transform(transform),
        eval_dataset=noisy.with_transform(transform),
        data_collator=DefaultDataCollator(),
        curriculum="mentornet-pd",
    )
    trainer.train()
    assert "eval_loss" in trainer.state.log_history[-2] and os.path.isfile(tmp_path / "label_issues.csv")
    assert len(trainer.rank_label_issues()) == 96


def test_push_to_hub_sends_the_student_with_its_curriculum_and_loads_offline(tmp_path, monkeypatch, intercepted_hub):
    """The network is intercepted; the files a push would send are laid out as a download leaves them in a Hugging
    Face cache (`models--user--name/snapshots/<rev>/`, `refs/main`) and load with HF_HUB_OFFLINE=1."""
    curriculum = random_mentornet()
    trainer = make_trainer(tmp_path / "run", curriculum=curriculum, label_issues=True, record_student=True,
                           hub_model_id="user/noisy-digits", report_to="tensorboard")  # fmt: skip
    trainer.train()
    trainer.push_to_hub()
    sent = intercepted_hub
    assert {"mentornet/config.json", "mentornet/model.safetensors", "model.safetensors", "README.md"} <= set(sent)
    assert not [path for path in sent if path.startswith(("student_records", "runs", "label_issues"))]
    card = open(sent["README.md"]).read()
    assert "weighted loss" in card and 'subfolder="mentornet"' in card and "pip install hf_mentornet" in card

    lay_out_as_downloaded(sent, tmp_path / "hub", "user/noisy-digits")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = MentorNetModel.from_pretrained("user/noisy-digits", subfolder="mentornet", cache_dir=tmp_path / "hub")
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), curriculum.state_dict().values(), strict=True)
    )


def test_bias_corrected_moving_average_is_right_from_step_one_and_unchanged_later(tmp_path):
    """Bias-corrected, the average is the mean of the percentiles seen (not 5% of the first one, as the released
    code's zero start gives); once decay^t underflows (338 steps at 0.95) it is bit-identical to the uncorrected one,
    so from-scratch runs whose burn-in is longer than that weight every sample as before."""
    trainers = {
        corrected: make_trainer(tmp_path, loss_moving_average_decay=0.95, loss_moving_average_bias_correction=corrected)
        for corrected in (True, False)
    }  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    usable, labels = torch.ones(16, dtype=torch.bool), torch.zeros(16, dtype=torch.long)
    for step in range(1, 401):
        losses = torch.rand(16, generator=generator) * 3
        averages = {
            corrected: trainer._update_loss_moving_average(losses, usable, labels, 10) * 0 + trainer._loss_moving_average
            for corrected, trainer in trainers.items()
        }  # fmt: skip
        if step == 1:
            percentile = torch.quantile(losses, trainers[True].args.loss_p_percentile)
            assert torch.allclose(averages[True], percentile) and torch.allclose(averages[False], 0.05 * percentile)
    assert torch.equal(averages[True], averages[False])
