"""WebVision loading on a tiny fake folder of the official layout, and the WebVision recipe end to end."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from hf_mentornet.hub import shipped_curricula
from hf_mentornet.webvision import load_webvision

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "webvision.py"
SYNSETS = ["n01440764 tench, Tinca tinca", "n01443537 goldfish, Carassius auratus", "n01484850 great white shark"]
# Per class: Google training images, Flickr training images, WebVision validation, ILSVRC12 validation.
COUNTS = {"google": 4, "flickr": 2, "val": 2, "imagenet_val": 2}


def _save_digit(image: np.ndarray, path: Path) -> None:
    # The 8x8 digits (values 0..16) upscaled to 32x32 RGB JPEGs.
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (image * (255 / 16)).astype(np.uint8)
    Image.fromarray(pixels).resize((32, 32)).convert("RGB").save(path, format="JPEG")


def build_fake_webvision(root: Path, num_classes: int = 3) -> Path:
    """A WebVision folder with `num_classes` classes made of scikit-learn digits (class c = digit c)."""
    digits = load_digits()
    pools = {c: iter(digits.images[digits.target == c]) for c in range(num_classes)}
    (root / "info").mkdir(parents=True)
    (root / "info" / "synsets.txt").write_text("\n".join(SYNSETS[:num_classes]) + "\n")
    for source in ("google", "flickr"):
        lines = []
        for c in range(num_classes):
            for i in range(COUNTS[source]):
                name = f"{source}/q{c + 1:04d}/{i:06d}.jpg"
                _save_digit(next(pools[c]), root / name)
                lines.append(f"{name} {c}")
        (root / "info" / f"train_filelist_{source}.txt").write_text("\n".join(lines) + "\n")
    lines = []
    for c in range(num_classes):
        for i in range(COUNTS["val"]):
            name = f"val{c * COUNTS['val'] + i + 1:06d}.jpg"
            _save_digit(next(pools[c]), root / "val_images_256" / name)
            lines.append(f"{name} {c}")
    (root / "info" / "val_filelist.txt").write_text("\n".join(lines) + "\n")
    for c in range(num_classes):
        for i in range(COUNTS["imagenet_val"]):
            name = f"ILSVRC2012_val_{c * COUNTS['imagenet_val'] + i + 1:08d}.JPEG"
            _save_digit(next(pools[c]), root / "imagenet" / "val" / SYNSETS[c].split()[0] / name)
    return root


@pytest.fixture(scope="module")
def webvision_root(tmp_path_factory):
    return build_fake_webvision(tmp_path_factory.mktemp("webvision") / "webvision")


def test_load_webvision_splits_and_labels(webvision_root):
    dataset = load_webvision(webvision_root, num_classes=3)
    assert list(dataset) == ["train", "val", "imagenet_val"]
    assert dataset["train"].features["label"].names == ["n01440764", "n01443537", "n01484850"]
    assert dataset["train"]["label"] == [0] * 4 + [1] * 4 + [2] * 4
    assert dataset["val"]["label"] == [0, 0, 1, 1, 2, 2]
    assert dataset["imagenet_val"]["label"] == [0, 0, 1, 1, 2, 2]
    image = dataset["imagenet_val"][2]["image"]
    assert image.size == (32, 32) and image.mode == "RGB"
    # Images are stored as paths and decoded when accessed.
    raw = dataset["train"].cast_column("image", dataset["train"].features["image"].__class__(decode=False))
    assert raw[0]["image"]["path"].endswith("google/q0001/000000.jpg") and raw[0]["image"]["bytes"] is None


def test_load_webvision_first_classes_and_sources(webvision_root):
    dataset = load_webvision(webvision_root, num_classes=2, sources=("google", "flickr"), splits=("train", "val"))
    assert list(dataset) == ["train", "val"]
    assert dataset["train"].features["label"].num_classes == 2
    assert sorted(dataset["train"]["label"]) == [0] * 6 + [1] * 6
    assert dataset["val"]["label"] == [0, 0, 1, 1]


def test_load_webvision_missing_files(webvision_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train_filelist_flickr\.txt.*recipes/README\.md"):
        partial = tmp_path / "partial"
        (partial / "info").mkdir(parents=True)
        (partial / "info" / "synsets.txt").write_text("n01440764 tench\n")
        load_webvision(partial, num_classes=1, sources=("flickr",))
    with pytest.raises(FileNotFoundError, match=r"imagenet/val/n01440764"):
        load_webvision(partial, num_classes=1, splits=("imagenet_val",))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_webvision(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="num_classes"):
        load_webvision(webvision_root, num_classes=4)


def test_load_webvision_hub_id_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(ValueError, match=r"`root`='someone/webvision'.*HF_HUB_OFFLINE"):
        load_webvision("someone/webvision")


def test_load_webvision_hub_columns(monkeypatch):
    # A Hub dataset (here a stand-in for `datasets.load_dataset`) with other column names and 4 classes.
    hub = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"jpg": ["a.jpg", "b.jpg", "c.jpg"], "cls": [0, 3, 1], "extra": [1, 2, 3]}
            )
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda dataset_id: hub)
    with pytest.raises(ValueError, match=r"has the columns \['jpg', 'cls', 'extra'\].*`image_column`='image'"):
        load_webvision("someone/webvision", splits=("train",))
    with pytest.raises(ValueError, match=r"splits \['train'\]"):
        load_webvision("someone/webvision", splits=("validation",), image_column="jpg", label_column="cls")
    dataset = load_webvision(
        "someone/webvision", num_classes=2, splits=("train",), image_column="jpg", label_column="cls"
    )
    assert dataset["train"].column_names == ["image", "label"] and dataset["train"]["label"] == [0, 1]


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {"single_gpu": ("NO", 1, 1), "multi_gpu": ("MULTI_GPU", 8, 1), "multi_node": ("MULTI_GPU", 16, 2)}
    for name, (distributed_type, num_processes, num_machines) in expected.items():
        config = load_config_from_file(str(REPO / "recipes" / "configs" / f"{name}.yaml"))
        assert (config.distributed_type.value, config.num_processes, config.num_machines) == (
            distributed_type,
            num_processes,
            num_machines,
        )


# ---- The recipe, end to end (needs the trainer, the data module and a shipped curriculum) ----

# A transformers student built from its configuration, and a timm one (the recipe's default family).
TINY_TRANSFORMERS_STUDENT = [
    "--student", "transformers/resnet",
    "--student_kwargs", '{"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}',
]  # fmt: skip
TINY_TIMM_STUDENT = ["--student", "timm/test_resnet"]


def _recipe_ready() -> str | None:
    """Why the recipe cannot run yet, or None."""
    missing = [
        name for name in ("data", "noise", "trainer") if importlib.util.find_spec(f"hf_mentornet.{name}") is None
    ]
    if missing:
        return f"hf_mentornet.{', hf_mentornet.'.join(missing)} not written yet"
    if "mentornet-pd" not in shipped_curricula():
        return "the shipped curriculum 'mentornet-pd' is not in hf_mentornet/pretrained yet"
    return None


needs_recipe = pytest.mark.skipif(_recipe_ready() is not None, reason=f"recipe not runnable: {_recipe_ready()}")


def _recipe_args(data_dir: Path, output_dir: Path, student: list[str] = TINY_TRANSFORMERS_STUDENT) -> list[str]:
    return [
        "--data_dir", str(data_dir), "--output_dir", str(output_dir), "--num_classes", "3", *student,
        "--image_size", "32", "--max_steps", "4", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--logging_steps", "2", "--save_strategy", "no",
        "--dataloader_num_workers", "0", "--use_cpu", "--seed", "0", "--curriculum", "mentornet-pd",
    ]  # fmt: skip


def _run(command: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _check_results(output_dir: Path) -> dict:
    results = json.loads((output_dir / "results.json").read_text())
    for name in ("webvision_val", "ilsvrc12_val"):
        for key in ("top1_accuracy", "top5_accuracy"):
            assert 0.0 <= results[name][key] <= 1.0
        # 3 classes: every class is in the top 5.
        assert results[name]["top5_accuracy"] == 1.0
    assert results["train"]["train_runtime"] > 0
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "run_args.json").is_file()
    return results


@needs_recipe
def test_recipe_end_to_end(webvision_root, tmp_path):
    output_dir = tmp_path / "run"
    result = _run([sys.executable, str(RECIPE), *_recipe_args(webvision_root, output_dir)])
    assert _check_results(output_dir)["train"]["epoch"] == pytest.approx(4 / 3)
    assert "ilsvrc12_val" in result.stdout and "top-5" in result.stdout
    run_args = json.loads((output_dir / "run_args.json").read_text())
    assert run_args["curriculum"] == "mentornet-pd" and run_args["max_steps"] == 4


@needs_recipe
def test_recipe_two_processes(webvision_root, tmp_path):
    # On a machine without GPUs, --use_cpu makes the two processes one gloo data-parallel group.
    output_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "recipes/configs/multi_gpu.yaml"),
        "--num_processes", "2", str(RECIPE), *_recipe_args(webvision_root, output_dir, TINY_TIMM_STUDENT),
    ]  # fmt: skip
    result = _run(command)
    results = _check_results(output_dir)
    # One data-parallel group: 4 steps of 2 x 4 samples over the 12 training images are 2 epochs (alone: 4 / 3).
    assert results["train"]["epoch"] == 2.0
    table = [line for line in result.stdout.splitlines() if line.startswith(("webvision_val ", "ilsvrc12_val "))]
    assert len(table) == 2  # only the main process prints the results


@needs_recipe
def test_recipe_refuses_a_different_run(webvision_root, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(RECIPE.parent))  # the recipes import their shared helper
    spec = importlib.util.spec_from_file_location("webvision_recipe", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "webvision_recipe", recipe)  # dataclasses look their module up
    spec.loader.exec_module(recipe)
    output_dir = tmp_path / "run"

    def parse(*extra: str):
        return recipe.parse_webvision_args([*_recipe_args(webvision_root, output_dir), *extra])

    recipe.check_output_dir(*parse())
    recipe.check_output_dir(*parse())  # the same run again is fine
    # A run that failed before its first checkpoint does not block its corrected re-run...
    recipe.check_output_dir(*parse("--learning_rate", "0.07"))
    # ... but one that left a checkpoint is kept from a different run.
    (output_dir / "checkpoint-2").mkdir()
    with pytest.raises(
        ValueError, match=r"holds a different run \(learning_rate: 0.07 -> 0.1\).*--overwrite_output_dir"
    ):
        recipe.check_output_dir(*parse("--learning_rate", "0.1"))
    recipe.check_output_dir(*parse("--learning_rate", "0.1", "--overwrite_output_dir"))
    assert json.loads((output_dir / "run_args.json").read_text())["learning_rate"] == 0.1
    recipe.check_output_dir(*parse("--learning_rate", "0.2", "--resume_from_checkpoint", str(output_dir / "ckpt")))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a run")
    with pytest.raises(ValueError, match="holds no run_args.json"):
        recipe.check_output_dir(*parse("--output_dir", str(tmp_path / "other")))
    # The paper's optimisation is the default; a YAML file gives the same arguments.
    script_args, training_args = parse()
    assert (training_args.learning_rate, training_args.weight_decay, training_args.optim_args) == (
        0.05,
        4e-5,
        "momentum=0.9",
    )
    script_args, training_args = recipe.parse_webvision_args([str(REPO / "recipes/configs/webvision.yaml")])
    assert script_args.student == "timm/inception_resnet_v2" and script_args.student_kwargs == {"drop_rate": 0.2}
    assert (training_args.per_device_train_batch_size, training_args.learning_rate) == (32, 0.05)
