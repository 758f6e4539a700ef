"""MentorMix (Jiang et al., ICML 2020): the mixing rule, its reduction to MentorNet weighting, determinism, resume,
and one process with batch 2b against two with batch b; on digits with tiny students built here."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_trainer import MLP, batch_of, collate, digits, make_args, params_of, random_mentornet

from hf_mentornet import (
    MentorMixConfig,
    MentorMixTrainer,
    build_student,
    inject_label_noise,
    load_embedded_dataset,
    mentormix_batch,
    train_method,
)
from hf_mentornet.baselines import CoTeachingPair
from hf_mentornet.trainer import MentorNetTrainer

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def saturated_mentornet():
    """A MentorNet whose weights are 0 or 1 (its logits scaled far from 0): the threshold curriculum's shape."""
    mentornet = random_mentornet()
    with torch.no_grad():
        mentornet.fc2.weight.mul_(1e4)
        mentornet.fc2.bias.mul_(1e4)
    return mentornet


def mentormix_trainer(tmp_path, curriculum=None, **overrides):
    return MentorMixTrainer(
        model=MLP(),
        args=make_args(tmp_path, MentorMixConfig, **overrides),
        data_collator=collate,
        train_dataset=digits(0.4, size=256),
        curriculum=random_mentornet() if curriculum is None else curriculum,
    )


def test_a_sample_weighted_below_one_half_never_keeps_the_larger_share():
    generator = torch.Generator().manual_seed(0)
    size = 64
    pixel_values = torch.rand(size, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (size,), generator=generator)
    weights = torch.rand(size, generator=generator)
    usable = torch.ones(size, dtype=torch.bool)
    usable[:4] = False
    mixing = torch.distributions.Beta(2.0, 2.0).sample((size,))
    uniform = torch.rand(size, generator=generator)
    batch = mentormix_batch(pixel_values, labels, weights, usable, mixing, uniform, num_classes=10)
    share, partner = batch["share"], batch["partner"]
    larger = torch.maximum(mixing, 1 - mixing)
    assert torch.equal(share[weights >= 0.5], larger[weights >= 0.5])
    assert torch.equal(share[weights < 0.5], 1 - larger[weights < 0.5]) and (share[weights < 0.5] <= 0.5).all()
    assert usable[partner].all()  # a sample that does not train is never a partner
    expected = share.view(-1, 1, 1, 1) * pixel_values + (1 - share.view(-1, 1, 1, 1)) * pixel_values[partner]
    assert torch.allclose(batch["pixel_values"], expected)
    assert torch.allclose(batch["targets"].sum(-1), torch.ones(size))
    kept = (share > 0.5) & usable  # (a sample that does not train has no label: its target is never counted)
    assert torch.equal(batch["targets"].argmax(-1)[kept], labels[kept])
    # Partners follow softmax(v): over many draws, a weight-1 sample is drawn e times as often as a weight-0 one.
    weights = torch.tensor([1.0, 0.0] * 8)
    uniform = torch.rand(16, 20_000, generator=generator)
    draws = torch.stack([mentormix_batch(pixel_values[:16], labels[:16], weights, torch.ones(16, dtype=torch.bool),
                                         mixing[:16], uniform[:, k], 10)["partner"] for k in range(2000)])  # fmt: skip
    counts = torch.bincount(draws.flatten(), minlength=16).float()
    assert abs(counts[::2].sum() / counts[1::2].sum() - math.e) < 0.1


def test_with_alpha_near_zero_and_no_second_weighting_it_is_mentornet_weighting(tmp_path):
    """Beta(alpha, alpha) with alpha -> 0 draws 0 or 1: a sample weighted 1 is itself, one weighted 0 is replaced by a
    partner but counts 0, so the loss is MentorNet's `sum_i v_i l_i / b` for 0/1 weights."""
    curriculum = saturated_mentornet()
    mix = mentormix_trainer(tmp_path / "mix", curriculum=curriculum, mentormix_alpha=1e-3)
    plain = MentorNetTrainer(
        model=MLP(), args=make_args(tmp_path / "mentornet"), data_collator=collate,
        train_dataset=digits(0.4, size=256), curriculum=curriculum,
    )  # fmt: skip
    for trainer in (mix, plain):
        trainer.state.max_steps, trainer.state.global_step = 10, 5
    batch = batch_of(mix.train_dataset)
    mixed_loss, mentornet_loss = mix.compute_loss(mix.model, dict(batch)), plain.compute_loss(plain.model, dict(batch))
    assert 0 < mentornet_loss.item() and torch.allclose(mixed_loss, mentornet_loss, atol=1e-4)
    # With alpha 8 the mix is real: another loss.
    mixing = mentormix_trainer(tmp_path / "alpha8", curriculum=curriculum, mentormix_alpha=8.0)
    mixing.state.max_steps, mixing.state.global_step = 10, 5
    assert not torch.allclose(mixing.compute_loss(mixing.model, dict(batch)), mentornet_loss, atol=1e-3)


@pytest.mark.parametrize("second_weighting", [False, True])
def test_it_trains_deterministically_for_a_seed(tmp_path, second_weighting):
    runs = []
    for name in ("a", "b"):
        trainer = mentormix_trainer(tmp_path / name, max_steps=6, mentormix_second_weighting=second_weighting)
        before = params_of(trainer.model)
        trainer.train()
        runs.append(params_of(trainer.model))
        assert not torch.equal(before, runs[-1]) and torch.isfinite(runs[-1]).all()
    assert torch.equal(*runs)
    other_seed = mentormix_trainer(tmp_path / "c", max_steps=6, seed=1, mentormix_second_weighting=second_weighting)
    other_seed.model.load_state_dict(MLP().state_dict())  # the same start, another mixing stream
    other_seed.train()
    assert not torch.equal(runs[0], params_of(other_seed.model))


def test_resume_gives_the_same_run(tmp_path):
    """Resuming from a checkpoint continues the same mixing stream (and the curriculum's state): the same losses
    and parameters as the run that never stopped."""
    settings = {
        "max_steps": 8,
        "save_strategy": "steps",
        "save_steps": 4,
        "mentormix_second_weighting": True,
        "example_dropout_schedule": [[0.25, 100]],
        "train_sampling_strategy": "random",
    }
    straight = mentormix_trainer(tmp_path / "straight", **settings)
    straight.train()
    resumed = mentormix_trainer(tmp_path / "resumed", **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-4"))

    def losses(trainer):
        return [log["loss"] for log in trainer.state.log_history if "loss" in log][-4:]

    assert np.allclose(losses(straight), losses(resumed), atol=1e-6)
    assert torch.allclose(params_of(straight.model), params_of(resumed.model), atol=1e-6)
    assert straight._mixing_generator.bit_generator.state == resumed._mixing_generator.bit_generator.state


def test_two_processes_with_batch_b_weight_as_one_process_with_batch_2b(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    outputs = {}
    for name, command in (
        ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", WORKER]),
        ("one", [sys.executable, WORKER]),
    ):
        (tmp_path / name).mkdir()
        size = "8" if name == "two" else "16"
        result = subprocess.run(
            [*command, str(tmp_path / name / "out.pt"), size, "batch_size", "0", "mentormix"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = torch.load(tmp_path / name / "out.pt")
    two, one = outputs["two"], outputs["one"]
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert torch.equal(two["sample_index"], one["sample_index"])
    assert torch.allclose(two["weight"], one["weight"], atol=1e-6)
    assert torch.allclose(two["loss_moving_average"], one["loss_moving_average"], atol=1e-6)


def test_bad_inputs_are_refused_naming_the_argument(tmp_path):
    for alpha in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="`mentormix_alpha`=.* must be a positive number"):
            make_args(tmp_path, MentorMixConfig, mentormix_alpha=alpha)
    with pytest.raises(ValueError, match="`mentormix_second_weighting`=True .* `curriculum_type`='closed-form'"):
        make_args(tmp_path, MentorMixConfig, curriculum_type="closed-form", mentormix_second_weighting=True)
    with pytest.raises(ValueError, match="CoTeachingPair.*CoTeachingTrainer"):
        MentorMixTrainer(CoTeachingPair(MLP(), MLP(seed=1)), make_args(tmp_path, MentorMixConfig))
    trainer = mentormix_trainer(tmp_path)
    trainer.state.max_steps = 10
    batch = batch_of(trainer.train_dataset)
    with pytest.raises(ValueError, match=r"`labels` must be class indices in 0\.\.9"):
        trainer.compute_loss(trainer.model, {**batch, "labels": batch["labels"] + 10})
    with pytest.raises(ValueError, match="`labels` must be a 1-D integer"):
        trainer.compute_loss(trainer.model, {**batch, "labels": batch["labels"].float()})


@pytest.mark.parametrize("student", ["transformers/resnet", "timm/resnet10t"])
def test_the_mentormix_method_trains_transformers_and_timm_students(tmp_path, student):
    """`train_method("mentormix", ...)`, as the recipes and the demo run it, on both kinds of student, with
    gradient accumulation."""
    noisy = inject_label_noise(load_embedded_dataset("digits"), 0.4, seed=0)
    noisy["train"] = noisy["train"].select(range(128))
    noisy["test"] = noisy["test"].select(range(64))
    kwargs = (
        {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]} if student.startswith("transformers") else {}
    )

    def factory():
        return build_student(student, 10, num_channels=1, **kwargs)

    settings = {
        "output_dir": str(tmp_path), "per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
        "max_steps": 3, "report_to": "none", "use_cpu": True, "disable_tqdm": True, "logging_steps": 1,
        "burn_in_steps": 1, "mentormix_alpha": 2.0, "mentormix_second_weighting": True,
    }  # fmt: skip
    summary, trainer = train_method("mentormix", noisy, factory, settings, transform_kwargs={"image_size": 16})
    assert isinstance(trainer, MentorMixTrainer) and trainer.state.global_step == 3
    assert trainer.args.curriculum == "mentornet-pd" and 0.0 <= summary.last_accuracy <= 1.0
    assert all(math.isfinite(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry)


def test_mentormix_mixes_by_the_dd_it_learns_on_policy(tmp_path):
    """`mentormix-dd-onpolicy`: MentorMix whose weights come from the DD learned from its own student on a trusted
    subset (the first, unmixed weighting's features), at the end of burn-in."""
    noisy = inject_label_noise(load_embedded_dataset("digits"), 0.4, seed=0)
    noisy["train"] = noisy["train"].select(range(256))
    noisy["test"] = noisy["test"].select(range(64))

    def factory():
        return build_student("transformers/resnet", 10, num_channels=1, embedding_size=8, hidden_sizes=[8], depths=[1])

    settings = {
        "output_dir": str(tmp_path), "per_device_train_batch_size": 32, "num_train_epochs": 3, "report_to": "none",
        "use_cpu": True, "disable_tqdm": True, "logging_steps": 1, "burn_in_fraction": 0.5,
        "curriculum_update_steps": 50,
    }  # fmt: skip
    summary, trainer = train_method(
        "mentormix-dd-onpolicy", noisy, factory, settings, transform_kwargs={"image_size": 16}, trusted_size=64
    )
    assert isinstance(trainer, MentorMixTrainer)
    learnings = [log for log in trainer.state.log_history if "mentornet/dd_percentile" in log]
    assert [log["step"] for log in learnings] == [math.ceil(trainer.burn_in_steps)]
    assert trainer.curriculum.config.curriculum_name == "on-policy-dd"
    assert int(trainer._trusted_buffer["count"]) >= 64  # every trusted row trained at least once before learning
    with pytest.raises(ValueError, match="learns its curriculum from a trusted subset"):
        train_method("mentormix-dd-onpolicy", noisy, factory, settings, transform_kwargs={"image_size": 16})
