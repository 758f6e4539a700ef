"""The main job (`hf-mentornet demo`), the CLI and the recipes cifar.py / train_mentornet.py, end to end on tiny
real data (scikit-learn's digits). The recipes are called as their `main(*parse_..._args(argv))`."""

import json
import os
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from sklearn.datasets import load_digits

from hf_mentornet import MentorNetModel
from hf_mentornet.cli import main as cli_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
import cifar  # noqa: E402
import train_mentornet  # noqa: E402

TINY_STUDENT = '{"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}'


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local image dataset with the Hub CIFAR-10 schema (`img`, `label`), from 600 real digits."""
    digits = load_digits()
    images = [PIL.Image.fromarray((image * 255 / 16).astype(np.uint8)).convert("RGB") for image in digits.images[:600]]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    dataset = datasets.Dataset.from_dict({"img": images, "label": digits.target[:600].tolist()}, features=features)
    folder = tmp_path_factory.mktemp("digits") / "data"
    folder.mkdir()
    dataset.select(range(500)).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    dataset.select(range(500, 600)).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    return str(folder.parent)


def test_demo_main_job(tmp_path, capsys):
    cli_main(
        ["demo", "--dataset", "digits", "--epochs", "2", "--methods", "plain", "mentornet-pd"]
        + ["--batch_size", "64", "--threads", "1", "--output_dir", str(tmp_path)]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert "| plain |" in out and "| mentornet-pd |" in out
    # A short console: no per-step log dicts, no datasets bars; the table last.
    assert "{'loss'" not in out + captured.err and "Flattening the indices" not in captured.err
    assert len(out.splitlines()) < 30 and out.rstrip().splitlines()[-1].startswith("  mentornet-pd/")
    for method in ("plain", "mentornet-pd"):
        results = json.loads((tmp_path / method / "results.json").read_text())
        assert len(results["accuracy_per_epoch"]) == 2
        assert 0.0 <= results["last_accuracy"] <= 1.0
        assert (tmp_path / method / "student" / "model.safetensors").is_file()
        assert (tmp_path / method / "label_issues.csv").is_file()
    assert (tmp_path / "mentornet-pd" / "curriculum.png").stat().st_size > 10_000
    assert (tmp_path / "plain" / "weights.png").stat().st_size > 10_000
    # Plain training weights every sample alike; the curriculum does not.
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert plain["mean_weight_clean"] == pytest.approx(plain["mean_weight_noisy"], abs=0.01)


def test_cifar_recipe_and_output_dir_guard(digits_folder, tmp_path, capsys):
    output_dir = str(tmp_path / "run")
    argv = [
        "--dataset", digits_folder, "--output_dir", output_dir, "--method", "mentornet-pd", "--noise_rate", "0.4",
        "--student", "transformers/resnet", "--student_kwargs", TINY_STUDENT, "--image_size", "16",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "50", "--save_strategy", "no",
    ]  # fmt: skip
    script_args, training_args = cifar.parse_cifar_args(argv)
    assert training_args.dataloader_num_workers == 4  # the protocol's: the transforms run in the workers
    cifar.main(script_args, training_args)
    results = json.loads(Path(output_dir, "results.json").read_text())
    assert len(results["accuracy_per_epoch"]) == 2 and results["method"] == "mentornet-pd"
    assert "last accuracy" in capsys.readouterr().out
    assert Path(output_dir, "run_args.json").is_file() and Path(output_dir, "label_issues.csv").is_file()
    assert Path(output_dir, "model.safetensors").is_file()

    # Another run in the same directory is refused, naming what changed, unless asked to overwrite.
    with pytest.raises(ValueError, match="noise_rate"):
        cifar.main(*cifar.parse_cifar_args([*argv, "--noise_rate", "0.2"]))
    with pytest.raises(ValueError, match="not a column"):
        cifar.main(*cifar.parse_cifar_args([*argv, "--image_column", "image", "--overwrite_output_dir"]))


def test_cifar_parser_reads_yaml_then_command_line(tmp_path, capsys):
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("method: focal\nfocal_gamma: 3.0\nnoise_rate: 0.2\noutput_dir: runs/x\nseed: 7\n")
    script_args, training_args = cifar.parse_cifar_args([str(run_yaml), "--seed", "1", "--reed_beta", "0.9"])
    assert script_args.method == "focal" and script_args.noise_rate == 0.2
    assert training_args.seed == 1 and training_args.focal_gamma == 3.0 and training_args.reed_beta == 0.9
    # The protocol file's defaults (recipes/configs/cifar.yaml) are under both.
    assert training_args.lr_decay_at == [0.5, 0.641, 0.769] and training_args.num_train_epochs == 100
    # A method's own argument is refused for another method, by name.
    with pytest.raises(ValueError, match="focal_gamma"):
        cifar.parse_cifar_args(["--method", "mentornet-pd", "--output_dir", "x", "--focal_gamma", "3"])
    with pytest.raises(ValueError, match="focal_gamma"):
        cifar.parse_cifar_args([str(run_yaml), "--method", "plain"])
    # --help lists the recipe's arguments and those of the chosen method's trainer.
    with pytest.raises(SystemExit):
        cifar.parse_cifar_args(["--method", "focal", "--help"])
    shown = capsys.readouterr().out
    assert "--noise_rate" in shown and "--focal_gamma" in shown and "--curriculum_type" not in shown


def test_train_mentornet_recipe(tmp_path):
    output_dir = tmp_path / "focal"
    argv = ["--source", "predefined", "--curriculum", "focal", "--curriculum_params", '{"gamma": 3}']
    train_mentornet.main(
        *train_mentornet.parse_train_mentornet_args([*argv, "--max_steps", "300", "--output_dir", str(output_dir)])
    )
    model = MentorNetModel.from_pretrained(output_dir)
    assert model.config.curriculum_name == "focal" and model.config.curriculum_params == {"gamma": 3}
    assert "focal" in (output_dir / "README.md").read_text()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".staging")]

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 10, 2000)
    label = np.where(rng.random(2000) < 0.4, rng.integers(0, 10, 2000), clean)
    loss = np.where(label == clean, rng.gamma(1.0, 0.3, 2000), rng.gamma(4.0, 0.8, 2000)).astype(np.float32)
    records = datasets.Dataset.from_dict(
        {"epoch": rng.integers(0, 100, 2000), "label": label, "clean_label": clean, "loss": loss}
    )
    records.to_parquet(str(tmp_path / "records.parquet"))
    dd_dir = tmp_path / "dd"
    # Hand-made records have no trainer loss_diff columns: the released code's reference (one percentile of all).
    argv = ["--source", "records", "--records", str(tmp_path / "records.parquet"), "--max_steps", "300"]
    argv += ["--loss_diff_reference", "all"]
    train_mentornet.main(
        *train_mentornet.parse_train_mentornet_args([*argv, "--loss_p_percentile", "0.5", "--output_dir", str(dd_dir)])
    )
    model = MentorNetModel.from_pretrained(dd_dir)
    assert model.config.curriculum_kind == "data-driven" and model.config.loss_p_percentile == 0.5
    assert model.config.fixed_epoch_after_burn_in
    # Clean records have the low losses: the learned curriculum weights a low loss above a high one.
    loss = torch.tensor([0.2, 5.0])
    weights = model(loss=loss, loss_diff=loss - float(np.percentile(records["loss"], 75)), epoch=50).weights
    assert weights[0] > 0.5 > weights[1]


def test_cli_noise_learn_plot(digits_folder, tmp_path, capsys):
    noisy_dir = tmp_path / "noisy"
    cli_main(
        ["noise", digits_folder, "--noise_rate", "0.5", "--noise_type", "symmetric", "--output_dir", str(noisy_dir)]
    )
    noisy = datasets.load_from_disk(str(noisy_dir))
    assert sum(noisy["train"]["is_noisy"]) == 250 and noisy["test"].column_names == ["img", "label"]
    assert json.loads((noisy_dir / "noise_report.json").read_text())["noise_rate"] == pytest.approx(0.5)

    cli_main(["learn", "predefined", "self-paced", "--output_dir", str(tmp_path / "sp")])
    assert MentorNetModel.from_pretrained(tmp_path / "sp").config.curriculum_name == "self-paced"

    assert "250 of 500 labels corrupted (realised noise rate 0.500)" in capsys.readouterr().out
    cli_main(["plot", "mentornet-pd", "--output", str(tmp_path / "pd.png")])
    assert (tmp_path / "pd.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match="no-such-curriculum"):
        cli_main(["plot", "no-such-curriculum", "--output", str(tmp_path / "x.png")])


@pytest.mark.parametrize("command", ["demo", "learn", "noise", "plot"])
def test_every_cli_subcommand_lists_its_options_with_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    assert len(options) >= 2 and text.count("(default:") == len(options), text


def test_make_shipped_curricula_copies_a_relearned_dd_with_its_provenance(tmp_path, monkeypatch):
    import make_shipped_curricula

    dd_runs = tmp_path / "bench"
    run = dd_runs / "noreg" / "noise-0.4" / "mentornet-dd-onpolicy" / "seed-0"
    with pytest.raises(FileNotFoundError, match=r"`--dd_runs`=.*run the cell first"):
        make_shipped_curricula.copy_relearned("mentornet-dd-noreg-0.4", dd_runs)
    learned = MentorNetModel.from_pretrained("mentornet-dd-noreg-0.4")
    learned.config.curriculum_name = "on-policy-dd"
    learned.save_pretrained(run / "curriculum")
    (run / "run.json").write_text(json.dumps({"last_accuracy": 0.5}))
    monkeypatch.setattr(make_shipped_curricula, "SHIPPED_CURRICULA_DIR", tmp_path / "pretrained")
    make_shipped_curricula.copy_relearned("mentornet-dd-noreg-0.4", dd_runs)
    copied = MentorNetModel.from_pretrained(tmp_path / "pretrained" / "mentornet-dd-noreg-0.4")
    assert copied.config.curriculum_name == "mentornet-dd-noreg-0.4"
    assert torch.equal(copied.fc2.weight, learned.fc2.weight)
    card = (tmp_path / "pretrained" / "mentornet-dd-noreg-0.4" / "README.md").read_text()
    assert "step 942" in card and "last test accuracy 0.5000" in card and "- uoft-cs/cifar10" in card
