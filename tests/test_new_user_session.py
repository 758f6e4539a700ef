"""A new user's session, scripted: the README's quickstart as written, then data that came noisy with a verified
subset, the way a transformers / timm / datasets user writes it: a ViT built from its config with its own image
processor, a timm model with its data config, their own `with_transform`, `DefaultDataCollator` and Trainer's default
`remove_unused_columns`. It trains, ranks label issues and pushes (the network intercepted), and what was pushed
loads offline."""

import re
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import PIL.Image
import timm
import torch
from conftest import lay_out_as_downloaded
from sklearn.datasets import load_digits
from timm.data import create_transform, resolve_data_config
from transformers import AutoModelForImageClassification, DefaultDataCollator, ViTConfig, ViTImageProcessor

from hf_mentornet import (
    MentorNetModel,
    MentorNetTrainer,
    MentorNetTrainingArguments,
    with_verified_labels,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_quickstart_runs_as_written(tmp_path, monkeypatch):
    """The quickstart's code, with only its length and output directory shortened for a test."""
    text = README.read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    assert "num_train_epochs=30," in code and '"runs/mnist-dd"' in code
    code = code.replace("num_train_epochs=30,", 'max_steps=3, report_to="none", use_cpu=True,')
    code = code.replace('"runs/mnist-dd"', repr(str(tmp_path / "mnist-dd")))
    namespace = {}
    exec(compile(code, "README quickstart", "exec"), namespace)
    assert namespace["trainer"].state.global_step == 3
    assert (tmp_path / "mnist-dd" / "label_issues.csv").is_file()


def crowd_labelled(num_rows: int = 160) -> datasets.Dataset:
    """RGB digits with a confused annotator (every 3rd label shifted by one) and every 4th row verified."""
    digits = load_digits()
    rows = np.arange(num_rows)
    truth = digits.target[:num_rows]
    images = [
        PIL.Image.fromarray((image * 255 / 16).astype(np.uint8)).convert("RGB") for image in digits.images[:num_rows]
    ]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10), "checked": datasets.Value("int64")}
    )
    return datasets.Dataset.from_dict(
        {
            "image": images,
            "label": np.where(rows % 3 == 0, (truth + 1) % 10, truth),
            "checked": np.where(rows % 4 == 0, truth, -1),
        },
        features=features,
    )


def train_rank_and_push(student, train_transform, eval_transform, tmp_path, repo_id, sent):
    data = with_verified_labels(crowd_labelled(), "checked")
    verified = data.filter(lambda row: row["clean_label"] >= 0)

    def with_pixels(transform):
        def apply(batch):  # what a user writes: images to pixel_values, the labels as `labels`
            return {
                "pixel_values": [transform(image.convert("RGB")) for image in batch["image"]],
                "labels": batch["label"],
                "sample_index": batch["sample_index"],
                "clean_label": batch["clean_label"],
            }

        return apply

    args = MentorNetTrainingArguments(
        output_dir=str(tmp_path / repo_id.split("/")[-1]),
        per_device_train_batch_size=32,
        num_train_epochs=2,
        learning_rate=0.01,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        label_issues=True,
        curriculum="mentornet-pd",
        burn_in_steps=2,  # a fine-tuning schedule in steps
        curriculum_update_at=[0.5],
        curriculum_update_steps=20,
        hub_model_id=repo_id,
    )
    assert args.remove_unused_columns  # Trainer's default
    trainer = MentorNetTrainer(
        model=student,
        args=args,
        train_dataset=data.with_transform(with_pixels(train_transform)),
        label_issues_dataset=data.with_transform(with_pixels(eval_transform)),
        curriculum_update_dataset=verified.with_transform(with_pixels(eval_transform)),
        data_collator=DefaultDataCollator(),
    )
    trainer.train()
    ranking = pd.read_csv(Path(args.output_dir) / "label_issues.csv")
    assert len(ranking) == len(data) and ranking["sample_index"].is_unique
    assert any("mentornet/update_heldout_auroc" in entry for entry in trainer.state.log_history)
    trainer.push_to_hub()
    # The student (a transformers config, or timm's for a timm model), its card and its curriculum.
    assert {"model.safetensors", "config.json", "README.md", "mentornet/model.safetensors"} <= set(sent)
    assert "label_issues.csv" not in sent
    return trainer


def test_already_noisy_data_with_a_vit_and_its_image_processor(tmp_path, monkeypatch, intercepted_hub):
    student = AutoModelForImageClassification.from_config(
        ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=16, num_labels=10)
    )  # fmt: skip
    processor = ViTImageProcessor(size={"height": 16, "width": 16})

    def transform(image):
        return torch.as_tensor(processor(image, return_tensors="np")["pixel_values"][0])

    trainer = train_rank_and_push(student, transform, transform, tmp_path, "user/crowd-vit", intercepted_hub)
    # What was pushed loads offline: the student, and the curriculum it ended training with.
    lay_out_as_downloaded(intercepted_hub, tmp_path / "hub", "user/crowd-vit")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = AutoModelForImageClassification.from_pretrained("user/crowd-vit", cache_dir=tmp_path / "hub")
    assert loaded.config.num_labels == 10
    curriculum = MentorNetModel.from_pretrained("user/crowd-vit", subfolder="mentornet", cache_dir=tmp_path / "hub")
    assert all(
        torch.equal(a, b.cpu())
        for a, b in zip(curriculum.state_dict().values(), trainer.curriculum.state_dict().values(), strict=True)
    )


def test_already_noisy_data_with_a_timm_model_and_its_data_config(tmp_path, monkeypatch, intercepted_hub):
    student = timm.create_model("resnet10t", num_classes=10)
    config = resolve_data_config({"input_size": (3, 32, 32)}, model=student)
    train_transform = create_transform(**config, is_training=True)
    eval_transform = create_transform(**config)
    trainer = train_rank_and_push(
        student, train_transform, eval_transform, tmp_path, "user/crowd-timm", intercepted_hub
    )
    # What was pushed loads offline as timm loads a Hub model.
    lay_out_as_downloaded(intercepted_hub, tmp_path / "hub", "user/crowd-timm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = timm.create_model("hf-hub:user/crowd-timm", pretrained=True, cache_dir=tmp_path / "hub")
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), trainer.model.state_dict().values(), strict=True)
    )
