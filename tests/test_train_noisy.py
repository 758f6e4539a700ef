"""Data whose labels came noisy: `with_verified_labels` and `recipes/train_noisy.py` end to end on a tiny dataset
built here from real digits, with real noise (labels flipped by a fixed rule, as a confused annotator would) and a
verified subset; and the bad inputs of that path."""

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pandas as pd
import PIL.Image
import pytest
from sklearn.datasets import load_digits
from transformers import AutoConfig, AutoModelForImageClassification

from hf_mentornet import MentorNetModel, build_student, load_curriculum, train_method, with_verified_labels
from hf_mentornet.methods import RunSummary, dd_curriculum
from hf_mentornet.trainer import curriculum_fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
import train_noisy  # noqa: E402

TINY_STUDENT = '{"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}'
NUM_ROWS = 400


def crowd_labelled_digits() -> datasets.Dataset:
    """Digits whose annotator confused 3 with 8 and 1 with 7 (both ways) on every 3rd row, and shifted every 5th
    row's label by one: about a quarter of the labels wrong. A person verified every 4th row (`verified_label`,
    rows 1, 5, 9, ...); the others carry -1."""
    digits = load_digits()
    truth = digits.target[:NUM_ROWS]
    confused = {3: 8, 8: 3, 1: 7, 7: 1}
    rows = np.arange(NUM_ROWS)
    given = np.where(rows % 3 == 0, [confused.get(c, c) for c in truth], truth)
    given = np.where(rows % 5 == 1, (truth + 1) % 10, given)
    verified = np.where(rows % 4 == 1, truth, -1)
    images = [
        PIL.Image.fromarray((image * 255 / 16).astype(np.uint8)).convert("RGB") for image in digits.images[:NUM_ROWS]
    ]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "file_name": datasets.Value("string"),
            "label": datasets.ClassLabel(num_classes=10),
            "verified_label": datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_dict(
        {"image": images, "file_name": [f"img_{i:04d}.png" for i in rows], "label": given, "verified_label": verified},
        features=features,
    )


@pytest.fixture(scope="module")
def crowd_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A `save_to_disk` folder: the first 300 crowd-labelled rows to train on, the last 100 with their true labels
    as the test split and, with their given labels and all of them verified, as a `checked` split."""
    dataset = crowd_labelled_digits()
    test = dataset.select(range(300, NUM_ROWS)).map(
        lambda row, index: {"label": int(load_digits().target[300 + index])}, with_indices=True
    )
    # A separate split checked in full: the given labels of rows 300-399 and their verified labels.
    checked = dataset.select(range(300, NUM_ROWS)).map(
        lambda row, index: {"verified_label": int(load_digits().target[300 + index])}, with_indices=True
    )
    folder = tmp_path_factory.mktemp("crowd") / "data"
    splits = {"train": dataset.select(range(300)), "test": test, "checked": checked}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return str(folder)


def test_with_verified_labels_keeps_the_given_labels_and_marks_the_unverified(tmp_path):
    dataset = crowd_labelled_digits()
    prepared = with_verified_labels(dataset, "verified_label")
    assert prepared["label"] == dataset["label"] and prepared["verified_label"] == dataset["verified_label"]
    clean = np.asarray(prepared["clean_label"])
    assert (clean[1::4] == load_digits().target[1:NUM_ROWS:4]).all() and (np.delete(clean, np.s_[1::4]) == -1).all()
    assert prepared["sample_index"] == list(range(NUM_ROWS))
    # Missing values are unverified too; so is a sentinel of the user's choice.
    missing = dataset.map(lambda row: {"verified_label": None if row["verified_label"] < 0 else row["verified_label"]})
    assert with_verified_labels(missing, "verified_label")["clean_label"] == prepared["clean_label"]
    marked = dataset.map(lambda row: {"verified_label": 255 if row["verified_label"] < 0 else row["verified_label"]})
    assert (
        with_verified_labels(marked, "verified_label", unverified_label=255)["clean_label"] == prepared["clean_label"]
    )


def test_already_noisy_bad_inputs_are_refused_naming_the_argument_and_the_fix():
    dataset = crowd_labelled_digits()
    with pytest.raises(ValueError, match=r"`unverified_label`=3 is a class id .*outside the classes, e.g. -1"):
        with_verified_labels(dataset, "verified_label", unverified_label=3)
    shifted = dataset.map(
        lambda row: {"verified_label": row["verified_label"] + 10 if row["verified_label"] >= 0 else -1}
    )
    with pytest.raises(
        ValueError, match=r"`verified_label_column`='verified_label' has 100 values outside the classes"
    ):
        with_verified_labels(shifted, "verified_label")
    strings = dataset.cast_column("label", datasets.Value("string"))
    with pytest.raises(TypeError, match=r"`label_column`='label' has feature .*string.*class_encode_column"):
        with_verified_labels(strings, "verified_label")
    names = dataset.remove_columns("verified_label").add_column(
        "verified_label", [str(v) for v in dataset["verified_label"]]
    )
    with pytest.raises(TypeError, match=r"cast_column\('verified_label', dataset.features\['label'\]\)"):
        with_verified_labels(names, "verified_label")
    nobody = dataset.map(lambda row: {"verified_label": -1})
    with pytest.raises(ValueError, match="has no verified row"):
        with_verified_labels(nobody, "verified_label")
    own = dataset.rename_column("verified_label", "clean_label")
    with pytest.raises(ValueError, match="its own `clean_label`.*rename_column"):
        with_verified_labels(own, "clean_label")


def test_student_outputs_and_pretrained_heads_must_match_the_classes(tmp_path):
    noisy = datasets.DatasetDict(
        {"train": with_verified_labels(crowd_labelled_digits().select(range(64)), "verified_label")}
    )
    settings = {"output_dir": str(tmp_path / "run"), "max_steps": 1, "report_to": "none", "use_cpu": True}
    with pytest.raises(ValueError, match=r"The student has 7 outputs, but the data has 10 classes.*num_labels=10"):
        train_method(
            "plain",
            noisy,
            lambda: build_student("transformers/resnet", 7, **json.loads(TINY_STUDENT)),
            settings,
            test_split=None,
        )
    config = AutoConfig.for_model("resnet", num_labels=7, **json.loads(TINY_STUDENT))
    AutoModelForImageClassification.from_config(config).save_pretrained(tmp_path / "seven_classes")
    with pytest.raises(ValueError, match=r"another number of classes than the data's 10.*ignore_mismatched_sizes"):
        build_student(str(tmp_path / "seven_classes"), 10)
    reheaded = build_student(str(tmp_path / "seven_classes"), 10, ignore_mismatched_sizes=True)
    assert reheaded.config.num_labels == 10


@pytest.mark.parametrize("method", ["mentornet-dd", "plain"])
def test_train_noisy_recipe_end_to_end(crowd_folder, tmp_path, capsys, method):
    output_dir = tmp_path / method
    argv = [
        "--dataset", crowd_folder, "--output_dir", str(output_dir), "--method", method, "--id_column", "file_name",
        "--verified_label_column", "verified_label", "--eval_split", "test",
        "--student", "transformers/resnet", "--student_kwargs", TINY_STUDENT, "--image_size", "16",
        "--num_train_epochs", "3", "--per_device_train_batch_size", "32", "--learning_rate", "0.05",
        "--save_strategy", "no", "--report_to", "none", "--use_cpu",
    ]  # fmt: skip
    if method == "mentornet-dd":  # the DD re-learned from the verified rows, burn-in and dropout in epochs
        argv += ["--curriculum_update_at", "0.5", "--curriculum_update_steps", "50", "--burn_in_epochs", "1"]
        argv += ["--example_dropout_schedule", "[[0.1, 1]]", "--example_dropout_schedule_unit", "epochs"]
    train_noisy.main(*train_noisy.parse_noisy_args(argv))
    out = capsys.readouterr().out
    assert "estimated noise rate" in out and "label_issues.csv" in out

    # The noise estimated on the 75 verified training rows (rows 1, 5, 9, ...) is what the rule did to them.
    report = json.loads((output_dir / "noise_report.json").read_text())
    rows = np.arange(1, 300, 4)
    truth = load_digits().target[rows]
    given = np.asarray(crowd_labelled_digits()["label"])[rows]
    assert report["num_samples"] == 75 and report["noise_rate"] == pytest.approx(float((given != truth).mean()))

    # Every training image is ranked, with its id and its verified label where there is one.
    ranking = pd.read_csv(output_dir / "label_issues.csv")
    assert len(ranking) == 300 and ranking.columns[1] == "file_name"
    assert set(ranking["file_name"]) == {f"img_{i:04d}.png" for i in range(300)}
    by_file = ranking.set_index("file_name")
    assert (
        by_file.loc["img_0005.png", "verified_label"] == truth[1]
        and by_file.loc["img_0004.png", "verified_label"] == -1
    )
    results = json.loads((output_dir / "results.json").read_text())
    assert results["num_verified"] == 75 and 0.0 <= results["ranking_auroc_on_verified"] <= 1.0
    assert len(results["accuracy_per_epoch"]) == 3
    # The student is saved; a MentorNet method saves its curriculum with it.
    assert (output_dir / "model.safetensors").is_file()
    if method == "mentornet-dd":
        # The curriculum saved is the one re-learned from the verified rows, not the shipped DD it started from.
        saved = MentorNetModel.from_pretrained(output_dir / "mentornet")
        shipped = load_curriculum(dd_curriculum(report["noise_rate"]))
        assert saved.config.curriculum_kind == "data-driven"
        assert curriculum_fingerprint(saved) != curriculum_fingerprint(shipped)
    else:
        assert not (output_dir / "mentornet").exists()


def test_a_separate_verified_split_estimates_the_noise_and_teaches_the_curriculum(crowd_folder, tmp_path):
    """`--verified_split`: its 100 rows join the training split's 75 verified ones in the noise estimate, and the
    data-driven update learns from them (not from the training split's)."""
    output_dir = tmp_path / "run"
    argv = [
        "--dataset", crowd_folder, "--output_dir", str(output_dir), "--method", "mentornet-pd",
        "--verified_label_column", "verified_label", "--verified_split", "checked",
        "--student", "transformers/resnet", "--student_kwargs", TINY_STUDENT, "--image_size", "16",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "32", "--save_strategy", "no",
        "--report_to", "none", "--use_cpu", "--curriculum_update_at", "0.5", "--curriculum_update_steps", "30",
    ]  # fmt: skip
    script_args, training_args = train_noisy.parse_noisy_args(argv)
    trainer = train_noisy.main(script_args, training_args)
    report = json.loads((output_dir / "noise_report.json").read_text())
    assert report["num_samples"] == 75 + 100
    assert len(trainer.curriculum_update_dataset) == 100
    assert any("mentornet/update_heldout_auroc" in entry for entry in trainer.state.log_history)
    saved = MentorNetModel.from_pretrained(output_dir / "mentornet")
    assert curriculum_fingerprint(saved) != curriculum_fingerprint(load_curriculum("mentornet-pd"))
    results = json.loads((output_dir / "results.json").read_text())
    assert math.isnan(results["last_accuracy"]) and results["num_verified"] == 75  # no eval split given


def test_run_summary_keeps_epoch_e_at_entry_e_minus_1_when_logging_skips_epochs():
    # logging_steps longer than an epoch (the memorising regime: 40 steps an epoch, a log every 50) leaves epochs
    # without a logged weight; they are NaN so that the later epochs keep their place.
    weights = {1: 0.9, 3: 0.7, 4: 0.6}
    history = [
        {
            "epoch": epoch - 0.25,
            "step": epoch,
            "mentornet/mean_weight_clean": weight,
            "mentornet/mean_weight_noisy": 0.1,
        }
        for epoch, weight in weights.items()
    ]
    history += [{"epoch": 4.0, "step": 4, "eval_top1_accuracy": 0.5}, {"epoch": 4.0, "step": 4, "train_runtime": 1.0}]
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=history), burn_in_steps=0)
    summary = RunSummary.from_trainer("mentornet-pd", trainer)
    assert len(summary.mean_weight_clean_per_epoch) == 4 and math.isnan(summary.mean_weight_clean_per_epoch[1])
    assert [summary.mean_weight_clean_per_epoch[epoch - 1] for epoch in weights] == list(weights.values())
