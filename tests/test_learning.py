"""Learning MentorNets: approximating predefined curricula and data-driven curricula from student records."""

import math

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from hf_mentornet import MentorNetConfig, MentorNetModel, feature_grid
from hf_mentornet.learning import (
    _histories,
    _percentile_references,
    curriculum_mse,
    learn_from_records,
    learn_predefined,
)
from hf_mentornet.plotting import plot_curriculum, plot_weight_histogram


def test_learn_predefined_reaches_low_mse_in_few_steps():
    model, metrics = learn_predefined("spcl-linear", {"gamma": 2.0}, num_samples=20_000, max_steps=400, seed=1)
    assert metrics["test_mse"] < 2e-3 and metrics["train_mse"] < 2e-3
    assert model.config.curriculum_name == "spcl-linear"
    assert model.config.curriculum_kind == "predefined"
    assert model.config.curriculum_params == {"gamma": 2.0}
    assert {"objective", "test_mse", "train_mse", "steps", "seed", "seconds"} <= set(model.config.learned_from)
    assert model.config.learned_from["steps"] == 400
    assert curriculum_mse(model) < 1e-2
    assert not model.training


def test_learn_predefined_on_features_warm_start_does_not_mutate():
    init, _ = learn_predefined("self-paced", num_samples=5_000, max_steps=50)
    before = {name: value.clone() for name, value in init.state_dict().items()}
    features = feature_grid(2_000, seed=3)
    features = {"loss": features["loss"][:, 0], "loss_diff": features["loss_diff"][:, 0], "epoch": features["epoch"]}
    model, metrics = learn_predefined("self-paced", init_model=init, features=features, max_steps=20)
    assert metrics["data"] == "student-features" and metrics["num_samples"] == 2_000 and metrics["warm_start"]
    assert model is not init
    assert all(torch.equal(before[name], value) for name, value in init.state_dict().items())
    with pytest.raises(ValueError, match="`features` lacks \\['epoch'\\]"):
        learn_predefined("self-paced", features={"loss": torch.ones(4), "loss_diff": torch.ones(4)}, max_steps=1)
    with pytest.raises(ValueError, match="`epoch` values must be in 0..99"):
        learn_predefined("self-paced", features={**features, "epoch": features["epoch"] + 100}, max_steps=1)
    with pytest.raises(ValueError, match="differs from `init_model`'s architecture in \\['hidden_size'\\]"):
        learn_predefined("self-paced", config=MentorNetConfig(hidden_size=2), init_model=init, max_steps=1)


def test_learn_predefined_is_seeded_and_validates():
    first, _ = learn_predefined("focal", num_samples=2_000, max_steps=5, seed=7)
    second, _ = learn_predefined("focal", num_samples=2_000, max_steps=5, seed=7)
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="Unknown curriculum 'nope'.*self-paced"):
        learn_predefined("nope")
    with pytest.raises(ValueError, match="`max_steps`=0"):
        learn_predefined("focal", num_samples=100, max_steps=0)
    with pytest.raises(ValueError, match="num_steps >= 2"):
        learn_predefined("prediction-variance", num_samples=100, max_steps=1)


def synthetic_records(num_samples=600, noise_rate=0.4, seed=0, with_sample_index=True):
    """Records of a student where clean samples have low loss and noisy ones high loss, over 5 epochs."""
    rng = np.random.default_rng(seed)
    epochs = np.array([10, 30, 50, 70, 90])
    sample = np.repeat(np.arange(num_samples), len(epochs))
    clean_label = rng.integers(0, 10, num_samples)
    noisy = rng.random(num_samples) < noise_rate
    label = np.where(noisy, (clean_label + 1) % 10, clean_label)
    loss = np.where(noisy[sample], rng.gamma(4.0, 1.0, len(sample)) + 1.5, rng.gamma(1.0, 0.5, len(sample)))
    records = {
        "epoch": np.tile(epochs, num_samples),
        "label": label[sample],
        "clean_label": clean_label[sample],
        "loss": loss.astype(np.float32),
    }
    if with_sample_index:
        records["sample_index"] = sample
    # A trainer's loss_diff_p<percent> columns: the loss minus that percentile of the step's losses.
    for percent in (40, 50, 60, 75, 80, 90):
        records[f"loss_diff_p{percent}"] = loss - _percentile_references(loss, records["epoch"], [percent], "epoch")[0]
    return records


def test_learn_from_records_tells_clean_from_noisy():
    records = datasets.Dataset.from_dict(synthetic_records()).shuffle(seed=0)
    config = MentorNetConfig(learned_from={"dataset": "synthetic", "student": "none"})
    model, metrics = learn_from_records(records, config, max_steps=150)
    low, high = model(torch.tensor([0.3, 8.0]), torch.tensor([0.3, 8.0]) - 1.0, epoch=50).weights.tolist()
    assert high < low
    assert metrics["heldout_accuracy"] > 0.8 and metrics["heldout_auroc"] > 0.9
    assert metrics["num_records"] == 3_000 and metrics["num_samples"] == 600
    assert 0.3 < metrics["noise_rate"] < 0.5
    assert model.config.curriculum_kind == "data-driven" and model.config.curriculum_name == "data-driven"
    assert model.config.learned_from["dataset"] == "synthetic"
    assert model.config.learned_from["heldout_accuracy"] == metrics["heldout_accuracy"]
    assert config.learned_from == {"dataset": "synthetic", "student": "none"}  # the caller's config is not modified


def test_loss_diff_reference_epoch_or_all():
    # Losses fall with training: the paper's moving percentile at epoch e is a percentile of epoch e's losses.
    loss = np.array([4.0, 6.0, 8.0, 0.5, 1.0, 1.5], dtype=np.float32)
    epoch = np.array([10, 10, 10, 90, 90, 90])
    by_epoch = _percentile_references(loss, epoch, [50, 100], "epoch")
    np.testing.assert_allclose(by_epoch, [[6.0, 6.0, 6.0, 1.0, 1.0, 1.0], [8.0, 8.0, 8.0, 1.5, 1.5, 1.5]])
    overall = _percentile_references(loss, epoch, [50, 100], "all")
    np.testing.assert_allclose(overall, [[2.75] * 6, [8.0] * 6])
    records = synthetic_records(num_samples=100)
    for reference in ("epoch", "all"):
        _, metrics = learn_from_records(records, loss_diff_reference=reference, max_steps=5)
        assert metrics["loss_diff_reference"] == reference
    with pytest.raises(ValueError, match="`loss_diff_reference`='batch' must be one of"):
        learn_from_records(records, loss_diff_reference="batch", max_steps=1)


def test_learn_from_records_with_history_dict_and_dataframe():
    records = synthetic_records(num_samples=200)
    model, metrics = learn_from_records(
        records, MentorNetConfig(num_steps=3), loss_diff_reference="epoch", max_steps=40
    )
    assert model.config.num_steps == 3 and metrics["steps"] == 40
    _, metrics = learn_from_records(pd.DataFrame(records), max_steps=5)
    assert metrics["num_records"] == 1_000
    with pytest.raises(ValueError, match="no `sample_index` column.*num_steps=3"):
        learn_from_records(
            synthetic_records(with_sample_index=False),
            MentorNetConfig(num_steps=3),
            loss_diff_reference="epoch",
            max_steps=1,
        )


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda r: r.pop("clean_label"), "no `clean_label` column"),
        (lambda r: r.update(epoch=r["epoch"].astype(float)), r"`records\['epoch'\]` must hold integers"),
        (lambda r: r["loss"].__setitem__(3, math.nan), r"`records\['loss'\]` has 1 NaN/inf.*row 3"),
        (
            lambda r: r["epoch"].__setitem__(5, 100),
            r"`records\['epoch'\]` must be training progress.*got 100 at row 5",
        ),
        (lambda r: r.update(loss=np.array(["a"] * len(r["loss"]))), r"`records\['loss'\]` must hold numbers"),
    ],
)
def test_learn_from_records_bad_records(change, match):
    records = synthetic_records(num_samples=20)
    change(records)
    with pytest.raises(ValueError, match=match):
        learn_from_records(records, max_steps=1)


def test_plots(tmp_path):
    model = MentorNetModel(MentorNetConfig(curriculum_name="test"))
    path = plot_curriculum(model, tmp_path / "curriculum.png", epochs=(10, 90), losses=[0, 1, 2], loss_diffs=[-1, 1])
    assert path.read_bytes()[:4] == b"\x89PNG"
    path = plot_weight_histogram(torch.rand(50), torch.rand(50) > 0.5, tmp_path / "weights.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="`weights` has 50 values but `is_noisy` 3"):
        plot_weight_histogram(torch.rand(50), [True, False, True], tmp_path / "bad.png")


def test_loss_histories_are_per_sample_and_ordered_by_epoch():
    loss = np.array([3.0, 1.0, 2.0, 10.0], dtype=np.float32)  # sample 0 at epochs 30, 10, 20; sample 1 at 10
    history = _histories(loss, epoch=np.array([30, 10, 20, 10]), sample=np.array([0, 0, 0, 1]), num_steps=3)
    assert history.tolist() == [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 1.0, 2.0], [10.0, 10.0, 10.0]]


def test_separating_threshold_is_the_loss_diff_of_best_youden_j():
    from hf_mentornet.learning import _separating_threshold

    loss_diff = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0])
    clean = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    # Below 0.0: all but one right label, no wrong one (J = 3/4); below 1.0: every right label, one wrong (J = 2/3).
    assert _separating_threshold(loss_diff, clean).item() == 0.0


@pytest.mark.parametrize("target", ["posterior", "balanced", "monotone", "threshold"])
def test_dd_targets_learn_a_weight_that_falls_with_the_loss(target):
    records = synthetic_records(num_samples=300)
    model, metrics = learn_from_records(records, percentiles=(75,), target=target, max_steps=150)
    assert metrics["target"] == target
    low, high = model(torch.tensor([0.3, 8.0]), torch.tensor([-1.0, 5.0]), epoch=20).weights.tolist()
    assert high < 0.5 < low
    assert metrics["heldout_selection_quality"] > 0.6
    if target == "threshold":  # sharp: a right label near 1, a wrong one near 0
        assert low > 0.9 and high < 0.1


def test_dd_targets_need_both_kinds_of_label():
    records = synthetic_records(num_samples=50, noise_rate=0.0)
    with pytest.raises(ValueError, match="holds no corrupted sample, so `target`='threshold'"):
        learn_from_records(records, target="threshold", max_steps=1)
    with pytest.raises(ValueError, match="`target`='sharp' must be one of"):
        learn_from_records(records, target="sharp", max_steps=1)
