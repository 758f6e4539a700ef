"""The on-policy DD (issue 22): a MentorNet learned during training from the trained student's features on a trusted
subset of the training rows, and the train/serve parity of the records every trainer writes."""

import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from test_trainer import MLP, collate, digits, make_args, params_of, random_mentornet

from hf_mentornet.learning import heldout_rows, learn_from_records
from hf_mentornet.trainer import MentorNetTrainer, on_policy_percentile

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def trusted_rows(train, size, seed=0):
    return train.select(np.sort(np.random.default_rng(seed).permutation(len(train))[:size]))


def on_policy_trainer(tmp_path, train, trusted, **overrides):
    settings = {
        "max_steps": -1,
        "num_train_epochs": 20,
        "per_device_train_batch_size": 32,
        "learning_rate": 0.1,
        "burn_in_fraction": 0.2,
        "curriculum_update_steps": 300,
        "logging_steps": 10,
        **overrides,
    }
    return MentorNetTrainer(
        model=MLP(),
        args=make_args(tmp_path, **settings),
        data_collator=collate,
        train_dataset=train,
        curriculum=random_mentornet(),
        trusted_dataset=trusted,
    )


def test_records_carry_the_served_features_and_a_learned_dd_reproduces_its_heldout_metric(tmp_path):
    # A MentorNet run's records: the weight it gave is the curriculum's output on the recorded features.
    curriculum = random_mentornet(fixed_epoch_after_burn_in=True)
    trainer = MentorNetTrainer(
        model=MLP(),
        args=make_args(tmp_path / "run", max_steps=24, burn_in_fraction=0.25, record_student=True),
        data_collator=collate,
        train_dataset=digits(0.4, size=256),
        curriculum=curriculum,
    )
    trainer.train()
    records = trainer.student_records().with_format("numpy")[:]
    served = records["progress"] >= 0.25
    assert (records["mentornet_epoch"][served] == 25).all()  # the epoch feature as served: fixed after burn-in
    with torch.no_grad():
        weights = curriculum(
            loss=torch.from_numpy(records["loss"][served]),
            loss_diff=torch.from_numpy(records["loss_diff"][served]),
            epoch=torch.from_numpy(records["mentornet_epoch"][served]),
        ).weights
    np.testing.assert_allclose(weights.numpy(), records["weight"][served], atol=1e-6)

    # A DD learned from records (trainer reference), fed the same held-out records, gives back its held-out metrics.
    records = digits_records(tmp_path / "plain")
    model, metrics = learn_from_records(records, percentiles=(75,), max_steps=200, seed=3)
    held = heldout_rows(records["sample_index"], 0.2, seed=3)
    with torch.no_grad():
        weights = model(
            loss=torch.from_numpy(records["loss"][held]),
            loss_diff=torch.from_numpy(records["loss_diff_p75"][held]),
            epoch=torch.from_numpy(np.minimum(records["epoch"][held], 20)),  # the config's fixed burn-in epoch
        ).weights.numpy()
    clean = records["label"][held] == records["clean_label"][held]
    assert metrics["heldout_mean_weight_clean"] == pytest.approx(weights[clean].mean(), abs=1e-6)
    assert metrics["heldout_mean_weight_noisy"] == pytest.approx(weights[~clean].mean(), abs=1e-6)
    assert metrics["heldout_selection_quality"] > 0.3


def digits_records(output_dir):
    from hf_mentornet.weighted_trainer import WeightedLossArguments, WeightedLossTrainer

    args = WeightedLossArguments(
        output_dir=str(output_dir), max_steps=100, per_device_train_batch_size=64, learning_rate=0.5, optim="sgd",
        report_to="none", use_cpu=True, disable_tqdm=True, record_student=True,
    )  # fmt: skip
    trainer = WeightedLossTrainer(model=MLP(), args=args, data_collator=collate, train_dataset=digits(0.4, size=640))
    trainer.train()
    return trainer.student_records().with_format("numpy")[:]


@pytest.fixture(scope="module")
def noisy_digits():
    return digits(0.4, size=1500)


def test_on_policy_dd_on_digits_drops_the_corrupted_labels_and_keeps_the_clean(tmp_path, noisy_digits):
    trainer = on_policy_trainer(tmp_path, noisy_digits, trusted_rows(noisy_digits, 300), burn_in_fraction=0.3)
    trainer.train()
    learnings = [log for log in trainer.state.log_history if "mentornet/dd_percentile" in log]
    assert len(learnings) == 1 and learnings[0]["step"] == round(trainer.burn_in_steps)
    assert learnings[0]["mentornet/dd_percentile"] in trainer.args.dd_percentiles
    assert trainer.args.loss_p_percentile == learnings[0]["mentornet/dd_percentile"]
    assert trainer.curriculum.config.curriculum_name == "on-policy-dd"
    after = [log for log in trainer.state.log_history if "mentornet/mean_weight_clean" in log]
    after = [log for log in after if log["step"] > trainer.burn_in_steps]
    clean = np.mean([log["mentornet/mean_weight_clean"] for log in after])
    noisy = np.mean([log["mentornet/mean_weight_noisy"] for log in after])
    print(f"mean weight after burn-in: clean {clean:.3f}, corrupted {noisy:.3f}")
    assert noisy < 0.2 and clean > 0.8


def test_the_on_policy_dd_can_compare_each_sample_with_its_class_percentile(tmp_path):
    train = digits(0.4, size=256)
    trainer = on_policy_trainer(
        tmp_path, train, trusted_rows(train, 64), max_steps=8, burn_in_fraction=0.5, record_student=True,
        loss_percentile_per_class=True,
    )  # fmt: skip
    trainer.train()
    assert trainer.curriculum.config.curriculum_name == "on-policy-dd"  # learned at the end of burn-in
    # Served (and kept for the learning) against each label class's own moving percentile, not the batch-wide one
    # the records also carry.
    records = trainer.student_records().with_format("numpy")[:]
    column = f"loss_diff_p{round(100 * trainer.args.loss_p_percentile)}"
    assert not np.allclose(records["loss_diff"], records[column], atol=1e-3)


def test_p_is_chosen_from_the_trusted_labels_and_served_from_the_first_step(tmp_path):
    assert on_policy_percentile([0.1, 0.2, 0.5, 0.6, 0.9], 0.64) == 0.6  # the largest below the right share
    assert on_policy_percentile([0.5, 0.9], 0.28) == 0.5  # none below it: the smallest
    train = digits(0.4, size=256)
    trusted = trusted_rows(train, 64)
    rows = trusted.with_format("numpy")[:]
    right_share = np.mean(rows["labels"] == rows["clean_label"])
    trainer = on_policy_trainer(tmp_path, train, trusted, max_steps=12, burn_in_fraction=0.5, record_student=True)
    assert trainer.args.loss_p_percentile == on_policy_percentile(trainer.args.dd_percentiles, right_share)
    trainer.train()
    # The served loss_diff is against the moving average of that p from step 0 on, burn-in included: the records'
    # own average of the same percentile.
    records = trainer.student_records().with_format("numpy")[:]
    column = f"loss_diff_p{round(100 * trainer.args.loss_p_percentile)}"
    np.testing.assert_allclose(records["loss_diff"], records[column], atol=1e-6)
    assert [
        log["mentornet/dd_percentile"] for log in trainer.state.log_history if "mentornet/dd_percentile" in log
    ] == [trainer.args.loss_p_percentile]


def test_resume_across_a_relearn_equals_the_uninterrupted_run(tmp_path, noisy_digits):
    train = noisy_digits.select(range(512))
    settings = {
        "num_train_epochs": 4,
        "per_device_train_batch_size": 64,
        "burn_in_fraction": 0.25,
        "curriculum_update_at": [0.75],
        "curriculum_update_steps": 40,
        "dd_percentiles": [0.5, 0.9],
        "save_strategy": "steps",
        "save_steps": 6,
        "train_sampling_strategy": "random",
        "example_dropout_schedule": [[0.5, 50], [0.1, 50]],
    }
    trusted = trusted_rows(train, 128)
    straight = on_policy_trainer(tmp_path / "straight", train, trusted, **settings)
    straight.train()
    # Checkpoint 18 lies between the first learning (step 8) and the re-learn (step 24) of 32 steps.
    resumed = on_policy_trainer(tmp_path / "resumed", train, trusted, **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-18"))
    learnings = [log["step"] for log in straight.state.log_history if "mentornet/dd_percentile" in log]
    assert learnings == [8, 24]
    assert [log["step"] for log in resumed.state.log_history if "mentornet/dd_percentile" in log][-1] == 24
    assert torch.equal(params_of(straight.curriculum), params_of(resumed.curriculum))
    assert torch.allclose(params_of(straight.model), params_of(resumed.model), atol=1e-6)
    assert straight.args.loss_p_percentile == resumed.args.loss_p_percentile
    assert torch.equal(straight._loss_moving_average, resumed._loss_moving_average)


def test_two_processes_learn_the_curriculum_one_process_learns(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    for name, command in (
        ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", WORKER, "--on-policy"]),
        ("one", [sys.executable, WORKER, "--on-policy"]),
    ):
        (tmp_path / name).mkdir()
        batch = "8" if name == "two" else "16"
        result = subprocess.run(
            [*command, str(tmp_path / name), batch], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "rank-0.pt")
    for rank in (0, 1):  # the main process learned; the other received the same MentorNet and percentile
        two = torch.load(tmp_path / "two" / f"rank-{rank}.pt")
        assert two["percentile"] == one["percentile"]
        assert torch.allclose(two["curriculum"], one["curriculum"], atol=1e-6)
        assert torch.allclose(two["student"], one["student"], atol=1e-5)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda t, train: t.map(lambda row: {"clean_label": -1}), "no verified label"),
        (lambda t, train: t.remove_columns("clean_label"), r"no \['clean_label'\] column"),
        (lambda t, train: train.filter(lambda row: row["clean_label"] == 3), "one class"),
        (lambda t, train: train.filter(lambda row: not row["is_noisy"]), "None of the .* is corrupted"),
        (lambda t, train: digits(0.4, size=400).select(range(300)), "300 verified rows but the training set only 256"),
        (
            lambda t, train: t.map(lambda row: {"sample_index": row["sample_index"] + 1000}),
            "are not in the training set.*must be training rows",
        ),
        (lambda t, train: t.map(lambda row: {"labels": (row["labels"] + 1) % 10}), "another given label"),
        (lambda t, train: datasets.concatenate_datasets([t, t]), "lists sample_index .* 2 times"),
    ],
)
def test_bad_trusted_subsets_are_refused_with_the_fix(tmp_path, change, match):
    train = digits(0.4, size=256)
    trusted = change(trusted_rows(train, 64), train)
    with pytest.raises(ValueError, match=match):
        on_policy_trainer(tmp_path, train, trusted)


def test_bad_on_policy_settings_are_refused(tmp_path):
    train = digits(0.4, size=256)
    trusted = trusted_rows(train, 64)
    with pytest.raises(ValueError, match="`curriculum_type`='closed-form' uses none"):
        on_policy_trainer(tmp_path, train, trusted, curriculum_type="closed-form")
    with pytest.raises(ValueError, match=r"`loss_p_percentile`=0.5 is given.*`dd_percentiles`=\[0.5\]"):
        on_policy_trainer(tmp_path, train, trusted, loss_p_percentile=0.5)
    with pytest.raises(ValueError, match="`dd_target`='sharp'"):
        make_args(tmp_path, dd_target="sharp")
    with pytest.raises(ValueError, match="`dd_percentiles`"):
        make_args(tmp_path, dd_percentiles=[75])
    with pytest.raises(ValueError, match="no trusted sample has trained yet.*burn-in is 0% of training"):
        on_policy_trainer(tmp_path, train, trusted, burn_in_fraction=0.0, max_steps=2).train()
