"""The paper's baselines (Appendix E.2) and Co-teaching: the losses against hand-computed values, the self-paced
threshold, the S-model's noise channel, Co-teaching's selection, each method's own arguments, and every method end
to end through `hf_mentornet.methods.train_method` on scikit-learn's digits with a tiny transformers ResNet (and
the data-driven curriculum update)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from torch import nn
from transformers import Trainer, TrainingArguments

from hf_mentornet import inject_label_noise, load_curriculum
from hf_mentornet.baselines import (
    CoTeachingConfig,
    CoTeachingPair,
    CoTeachingTrainer,
    NoiseAdaptationLayer,
    RobustLossConfig,
    SelfPacedConfig,
    co_teaching_forget_rate,
    co_teaching_weights,
    focal_loss,
    reed_hard_loss,
    reed_soft_loss,
    self_paced_threshold,
)
from hf_mentornet.data import MentorNetCollator, load_embedded_dataset
from hf_mentornet.methods import METHODS, method_arguments, train_method
from hf_mentornet.students import build_student
from hf_mentornet.trainer import MentorNetTrainer
from hf_mentornet.weighted_trainer import WeightedLossArguments, WeightedLossTrainer

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
LABELS = torch.tensor([0, 2])


def softmax_rows():
    return [[math.exp(x) / sum(math.exp(y) for y in row) for x in row] for row in LOGITS.tolist()]


def test_focal_loss_hand_values():
    q = softmax_rows()
    expected = [-((1 - q[0][0]) ** 2) * math.log(q[0][0]), -((1 - q[1][2]) ** 2) * math.log(q[1][2])]
    assert focal_loss(LOGITS, LABELS, 2.0).tolist() == pytest.approx(expected, rel=1e-5)
    cross_entropy = F.cross_entropy(LOGITS, LABELS, reduction="none")
    torch.testing.assert_close(focal_loss(LOGITS, LABELS, 0.0), cross_entropy)


def test_reed_losses_hand_values():
    q = softmax_rows()
    beta = 0.8
    soft = [
        -(beta * math.log(row[y]) + (1 - beta) * sum(p * math.log(p) for p in row))
        for row, y in zip(q, [0, 2], strict=True)
    ]
    hard = [-(beta * math.log(row[y]) + (1 - beta) * math.log(max(row))) for row, y in zip(q, [0, 2], strict=True)]
    assert reed_soft_loss(LOGITS, LABELS, beta).tolist() == pytest.approx(soft, rel=1e-5)
    assert reed_hard_loss(LOGITS, LABELS, beta).tolist() == pytest.approx(hard, rel=1e-5)
    cross_entropy = F.cross_entropy(LOGITS, LABELS, reduction="none")
    torch.testing.assert_close(reed_soft_loss(LOGITS, LABELS, 1.0), cross_entropy)
    torch.testing.assert_close(reed_hard_loss(LOGITS, LABELS, 1.0), cross_entropy)
    # The prediction in the soft target is not detached: its entropy term has a gradient of its own.
    logits = LOGITS.clone().requires_grad_()
    reed_soft_loss(logits, LABELS, beta).sum().backward()
    assert not torch.allclose(logits.grad, beta * _ce_grad())


def _ce_grad():
    logits = LOGITS.clone().requires_grad_()
    F.cross_entropy(logits, LABELS, reduction="sum").backward()
    return logits.grad


def test_self_paced_threshold_grows_per_epoch():
    losses = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0])
    thresholds = [self_paced_threshold(losses, 0.5, 1.2, epoch).item() for epoch in range(5)]
    assert thresholds == pytest.approx([2.0 * 1.2**epoch for epoch in range(5)])
    assert (losses <= thresholds[0]).sum() == 3 and (losses <= thresholds[4]).sum() == 4


def test_noise_adaptation_layer():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    layer = NoiseAdaptationLayer(student, num_labels=3, diagonal=0.9)
    transition = layer.transition()
    torch.testing.assert_close(transition, torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]))
    images = torch.randn(5, 1, 2, 2)
    noisy_log_probs = layer.train()(images)
    torch.testing.assert_close(noisy_log_probs.exp().sum(-1), torch.ones(5))
    torch.testing.assert_close(noisy_log_probs.exp(), student(images).softmax(-1) @ transition)
    F.cross_entropy(noisy_log_probs, torch.tensor([0, 1, 2, 0, 1])).backward()
    assert layer.transition_logits.grad.abs().sum() > 0
    torch.testing.assert_close(layer.eval()(images), student(images))  # evaluated without the channel
    assert "transition_logits" in layer.state_dict() and "student.1.weight" in layer.state_dict()
    with pytest.raises(ValueError, match="diagonal"):
        NoiseAdaptationLayer(student, num_labels=3, diagonal=0.2)


def test_co_teaching_selects_small_losses_for_the_peer():
    losses = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.8, 0.2, 0.4, 0.6]])
    weights = co_teaching_weights(losses, forget_rate=0.5)
    # Network 0's two smallest are samples 0 and 3: network 1 trains on them, and the other way round.
    assert weights.tolist() == [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
    assert co_teaching_weights(losses, forget_rate=0.0).sum() == 8
    rates = [co_teaching_forget_rate(epoch, 0.4, 10) for epoch in (0, 4.5, 5, 10, 30)]
    assert rates == pytest.approx([0.0, 0.16, 0.2, 0.4, 0.4])
    torch.manual_seed(0)
    pair = CoTeachingPair(nn.Linear(4, 3), nn.Linear(4, 3))
    x = torch.randn(2, 4)
    assert pair.train()(x).shape == (2, 2, 3) and pair.eval()(x).shape == (2, 3)
    same = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="identical weights"):
        CoTeachingPair(same, _copy(same))


def _copy(module):
    clone = nn.Linear(4, 3)
    clone.load_state_dict(module.state_dict())
    return clone


def test_bad_arguments(tmp_path):
    for config_class, name, value in [
        (RobustLossConfig, "focal_gamma", -1.0),
        (RobustLossConfig, "reed_beta", 0.0),
        (RobustLossConfig, "reed_beta", 1.5),
        (RobustLossConfig, "loss_type", "hinge"),
        (SelfPacedConfig, "self_paced_growth", 0.9),
        (SelfPacedConfig, "self_paced_percentile", 0.0),
        (CoTeachingConfig, "co_teaching_forget_rate", 1.0),
        (CoTeachingConfig, "co_teaching_ramp_epochs", -1.0),
    ]:
        with pytest.raises(ValueError, match=name):
            config_class(output_dir=str(tmp_path), report_to="none", **{name: value})
    with pytest.raises(ValueError, match="label_smoothing_factor"):
        RobustLossConfig(output_dir=str(tmp_path), report_to="none", loss_type="focal", label_smoothing_factor=0.1)
    # What co-teaching used to ignore silently is refused, naming the argument.
    with pytest.raises(ValueError, match="scale_weight_decay_by_mean_weight"):
        CoTeachingConfig(output_dir=str(tmp_path), report_to="none", scale_weight_decay_by_mean_weight=True)
    with pytest.raises(TypeError, match="CoTeachingPair"):
        CoTeachingTrainer(model=nn.Linear(4, 3), args=CoTeachingConfig(output_dir=str(tmp_path), report_to="none"))
    pair = CoTeachingPair(nn.Linear(4, 3), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="co_teaching_forget_rate"):
        CoTeachingTrainer(model=pair, args=CoTeachingConfig(output_dir=str(tmp_path), report_to="none"))


def test_a_method_takes_only_its_own_arguments(tmp_path):
    base = {"output_dir": str(tmp_path), "report_to": "none"}
    with pytest.raises(ValueError, match=r"\['focal_gamma'\] are not arguments of `method`='mentornet-pd'"):
        method_arguments("mentornet-pd", {**base, "focal_gamma": 2.0}, corrupted_fraction=0.4)
    with pytest.raises(ValueError, match="burn_in_fraction"):
        method_arguments("co-teaching", {**base, "burn_in_fraction": 0.2}, corrupted_fraction=0.4)
    with pytest.raises(ValueError, match="no-such-method"):
        method_arguments("no-such-method", base, corrupted_fraction=0.4)
    # The per-rate DD choice: the shipped DD learned at the nearest noise rate.
    chosen = {
        rate: method_arguments("mentornet-dd", base, corrupted_fraction=rate).curriculum for rate in (0.18, 0.36)
    }
    assert chosen == {0.18: "mentornet-dd-0.2", 0.36: "mentornet-dd"}
    args = method_arguments("co-teaching", {**base, "scale_weight_decay_by_mean_weight": True}, corrupted_fraction=0.3)
    assert args.co_teaching_forget_rate == 0.3 and not args.scale_weight_decay_by_mean_weight
    assert type(method_arguments("plain", base, corrupted_fraction=0.4)) is WeightedLossArguments


@pytest.fixture(scope="module")
def digits():
    data = load_embedded_dataset("digits", seed=0)
    return data.__class__(train=data["train"].select(range(96)), test=data["test"].select(range(64)))


def tiny_student():
    return build_student(
        "transformers/resnet", 10, num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]
    )


def settings(tmp_path, **overrides) -> dict:
    """Small, quiet CPU training arguments for `train_method` on the digits."""
    return {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 64,
        "learning_rate": 0.05,
        "optim": "sgd",
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
        **overrides,
    }


def run(digits, method, tmp_path, **kwargs):
    noisy = inject_label_noise(digits, 0.4, seed=0)
    train_kwargs = {name: kwargs.pop(name) for name in ("curriculum_update_size",) if name in kwargs}
    return train_method(
        method, noisy, tiny_student, settings(tmp_path, **kwargs), transform_kwargs={"image_size": 16}, **train_kwargs
    )


@pytest.mark.parametrize(
    "method",
    ["plain", "focal", "reed-soft", "reed-hard", "self-paced", "s-model", "co-teaching", "forgetting", "oracle"],
)
def test_method_end_to_end(digits, tmp_path, method):
    assert method in METHODS
    result, trainer = run(digits, method, tmp_path, num_train_epochs=1, logging_steps=1, label_issues=True)
    assert len(result.accuracy_per_epoch) == 1 and 0.0 <= result.last_accuracy <= 1.0
    assert math.isfinite(trainer.state.log_history[0]["loss"])
    assert not isinstance(trainer, MentorNetTrainer)  # no curriculum in the loop of a baseline
    train = trainer.train_dataset
    if method == "oracle":
        assert not any(train["is_noisy"]) and 0 < len(train) < len(digits["train"])
    else:
        assert len(train) == len(digits["train"])
    if method in ("plain", "s-model", "forgetting", "oracle", "focal", "reed-soft", "reed-hard"):
        # Plain training (with its loss): every weight exactly 1.
        assert all(log["mentornet/mean_weight"] == 1.0 for log in trainer.state.log_history if "loss" in log)
    if method == "plain":
        assert type(trainer) is WeightedLossTrainer
    if method == "s-model":
        trainer.save_model()
        state = load_file(str(tmp_path / "model.safetensors"))
        assert "transition_logits" in state and any(key.startswith("student.") for key in state)
    if method == "co-teaching":
        assert trainer.args.co_teaching_forget_rate == pytest.approx(
            sum(train["is_noisy"]) / len(train)
        ) and isinstance(trainer.model, CoTeachingPair)
        # Its label-issue ranking reads the weights the peer gave (from the second half of training).
        issues = trainer.rank_label_issues()
        assert len(issues) == len(train)
    if method in ("focal", "reed-soft", "reed-hard"):
        assert trainer.args.loss_type == method
    if method == "self-paced":
        # At epoch 0 the threshold is the batch median: about half of the samples get weight 1.
        assert 0.3 <= trainer.state.log_history[0]["mentornet/mean_weight"] <= 0.7


def test_data_driven_update_on_known_clean_training_samples(digits, tmp_path):
    update = {"max_steps": 10, "curriculum_update_steps": 5}
    with pytest.raises(ValueError, match=r"`curriculum_update_size`=90 needs a MentorNet method"):
        run(digits, "mentornet-dd", tmp_path, **update, curriculum_update_size=90)
    with pytest.raises(ValueError, match=r"`curriculum_update_size`=90 needs a MentorNet method"):
        run(digits, "plain", tmp_path, max_steps=10, curriculum_update_size=90)
    before = load_curriculum("mentornet-dd").state_dict()
    _, trainer = run(digits, "mentornet-dd", tmp_path, **update, curriculum_update_at=[0.5], curriculum_update_size=90)
    update = trainer.curriculum_update_dataset
    assert len(update) == 90 and {"labels", "clean_label"} <= set(update[0])
    assert any(update[i]["labels"] != update[i]["clean_label"] for i in range(90))  # noisy labels, told the clean
    updates = [log for log in trainer.state.log_history if "mentornet/curriculum_update" in log]
    assert [log["step"] for log in updates] == [5] and 0.0 <= updates[0]["mentornet/update_heldout_auroc"] <= 1.0
    after = trainer.curriculum.state_dict()
    assert any(not torch.equal(before[name], after[name].cpu()) for name in before)


def test_plain_training_takes_the_steps_of_transformers_trainer(tmp_path):
    """WeightedLossTrainer weights every sample exactly 1: the same updates as transformers' Trainer, whose model
    computes the mean cross-entropy itself."""
    digits = load_digits()
    dataset = Dataset.from_dict(
        {"pixel_values": (digits.images[:64, None] / 16.0).astype(np.float32), "labels": digits.target[:64]}
    )
    common = {
        "per_device_train_batch_size": 16,
        "max_steps": 3,
        "learning_rate": 0.1,
        "optim": "sgd",
        "lr_scheduler_type": "constant",
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "seed": 0,
    }
    torch.manual_seed(0)
    plain = WeightedLossTrainer(
        model=tiny_student(), args=WeightedLossArguments(output_dir=str(tmp_path / "plain"), **common),
        train_dataset=dataset, data_collator=MentorNetCollator(),
    )  # fmt: skip
    plain.train()
    torch.manual_seed(0)
    reference = Trainer(
        model=tiny_student(), args=TrainingArguments(output_dir=str(tmp_path / "trainer"), **common),
        train_dataset=dataset,
    )  # fmt: skip
    reference.train()
    for (name, ours), theirs in zip(
        plain.model.state_dict().items(), reference.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)
    assert all(log["mentornet/mean_weight"] == 1.0 for log in plain.state.log_history if "loss" in log)
    torch.manual_seed(0)
    initial = tiny_student().state_dict()
    assert plain.state.global_step == 3 and not torch.equal(
        initial["classifier.1.weight"], theirs_classifier(reference)
    )


def theirs_classifier(trainer):
    return trainer.model.state_dict()["classifier.1.weight"]
