import os

import numpy as np
import PIL.Image
import pytest
import timm
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification, ViTImageProcessor

from hf_mentornet.data import (
    MENTORNET_COLUMNS,
    MentorNetCollator,
    image_transforms,
    load_embedded_dataset,
    with_image_transform,
)
from hf_mentornet.noise import inject_label_noise


@pytest.fixture(scope="module")
def digits():
    return load_embedded_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def timm_student():
    return timm.create_model("test_resnet.r160_in1k", pretrained=False, num_classes=10)


def test_embedded_datasets_load_offline(digits):
    assert digits["train"].num_rows + digits["test"].num_rows == 1797
    assert isinstance(digits["train"].features["image"], Image)
    assert digits["train"].features["label"] == ClassLabel(names=[str(i) for i in range(10)])
    image = digits["train"][0]["image"]
    assert image.mode == "L" and image.size == (8, 8)
    pixels = np.stack([np.asarray(row["image"]) for row in digits["train"].select(range(200))])
    assert pixels.dtype == np.uint8 and pixels.max() == 255 and pixels.min() == 0
    # Stratified: every class has about a fifth of its images in the test split.
    counts = np.bincount(digits["test"]["label"], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    mnist = load_embedded_dataset("mnist", seed=1, test_size=1000)
    assert mnist["train"].num_rows == 4000 and mnist["test"].num_rows == 1000
    assert np.bincount(mnist["test"]["label"]).tolist() == [100] * 10
    assert mnist["train"][0]["image"].size == (28, 28)
    with pytest.raises(ValueError, match="digits"):
        load_embedded_dataset("cifar10")


def test_embedded_split_depends_on_seed(digits):
    assert load_embedded_dataset("digits", seed=0)["test"]["label"] == digits["test"]["label"]
    assert load_embedded_dataset("digits", seed=1)["test"]["label"] != digits["test"]["label"]


def test_timm_transforms(timm_student):
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8))
    for train in (True, False):
        out = image_transforms(timm_student, image_size=32, train=train)(image)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    default = image_transforms(timm_student, train=False)(np.asarray(image))
    assert default.shape == (3, 160, 160)  # the model's own input size
    assert timm_student(default[None]).shape == (1, 10)


def test_cifar_augmentation_pads_crops_and_standardises():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    transform = image_transforms(None, cifar_augmentation=True, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    evaluate = image_transforms(None, cifar_augmentation=True, train=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    expected = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    assert torch.allclose(evaluate(image), expected, atol=1e-5)
    torch.manual_seed(0)
    outs = [transform(image) for _ in range(8)]
    assert all(out.shape == (3, 32, 32) for out in outs)
    assert any(not torch.equal(out, expected) for out in outs)
    # A random crop of the padded image: some view is shifted, padding shows as the standardised zero.
    assert any((out == (0 - 0.5) / 0.25).all(dim=0).any() for out in outs)


def test_transformers_processor_and_model():
    image = PIL.Image.new("L", (8, 8), color=128)
    vit = image_transforms(
        ViTImageProcessor(size={"height": 24, "width": 24}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    )
    assert vit(image).shape == (3, 24, 24)
    convnext = image_transforms(ConvNextImageProcessor(size={"shortest_edge": 20}), train=False, in_chans=1)
    out = convnext(image)
    assert out.shape == (1, 20, 20)
    mean, std = ConvNextImageProcessor().image_mean, ConvNextImageProcessor().image_std
    assert torch.allclose(out, torch.full_like(out, (128 / 255 - np.mean(mean)) / np.mean(std)), atol=1e-2)
    # Built from a config (no image processor): the generic [-1, 1] scaling, the config's channels, `image_size`.
    model = ResNetForImageClassification(
        ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1])
    )
    out = image_transforms(model, train=False, image_size=16)(image)
    assert out.shape == (1, 16, 16)
    assert torch.allclose(out, torch.full_like(out, (128 / 255 - 0.5) / 0.5), atol=1e-2)
    with pytest.raises(TypeError, match="student"):
        image_transforms("resnet18")


def test_pipeline_columns_and_collator(digits, timm_student):
    noisy = inject_label_noise(digits, 0.5, seed=0)
    data = with_image_transform(noisy, image_transforms(timm_student, image_size=16))
    example = data["train"][3]
    assert set(example) == set(MENTORNET_COLUMNS)
    assert example["labels"] == noisy["train"][3]["label"]
    assert example["clean_label"] == digits["train"][3]["label"]
    # Lazy: the stored columns are untouched and the test split has only image and label.
    assert data["train"].column_names == noisy["train"].column_names
    assert set(data["test"][0]) == {"pixel_values", "labels"}
    batch = MentorNetCollator()([data["train"][i] for i in range(5)])
    assert batch["pixel_values"].shape == (5, 3, 16, 16)
    assert batch["labels"].dtype == batch["sample_index"].dtype == batch["clean_label"].dtype == torch.long
    assert batch["sample_index"].tolist() == noisy["train"]["sample_index"][:5]
    assert torch.equal(batch["is_noisy"], batch["labels"] != batch["clean_label"])
    assert set(MentorNetCollator(columns=("pixel_values", "labels"))([example])) == {"pixel_values", "labels"}
    assert timm_student(batch["pixel_values"]).shape == (5, 10)


def test_pipeline_on_a_stream(digits, timm_student):
    stream = inject_label_noise(digits["train"].to_iterable_dataset(num_shards=2), 0.5, seed=0)
    data = with_image_transform(stream, image_transforms(timm_student, image_size=16, train=False))
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=MentorNetCollator())
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (4, 3, 16, 16)
    assert batch["sample_index"].tolist() == [0, 2, 4, 6]  # row * 2 + shard: unique over the 2 shards
    assert batch["clean_label"].tolist() == digits["train"]["label"][:4]


def test_broken_image_names_row_and_column():
    good = PIL.Image.new("L", (4, 4))
    ds = Dataset.from_dict(
        {"picture": [good, good], "label": [0, 1], "sample_index": [10, 11]},
        features=Features({"picture": Image(), "label": ClassLabel(num_classes=2), "sample_index": Value("int64")}),
    )
    broken = ds.cast_column("picture", Image(decode=False)).map(
        lambda row: {
            "picture": {"bytes": b"not an image", "path": None} if row["sample_index"] == 11 else row["picture"]
        }
    )
    broken = broken.cast_column("picture", Image())
    data = with_image_transform(broken, image_transforms(None), image_column="picture")
    assert data[0]["pixel_values"].shape == (3, 4, 4)
    with pytest.raises(ValueError, match=r"picture.*sample_index 11|sample_index 11.*picture"):
        data[1]
    with pytest.raises(ValueError, match="image_column"):
        with_image_transform(ds, image_transforms(None))


def test_image_transforms_follow_a_transformers_student(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    vit = ViTForImageClassification(
        ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                  num_attention_heads=2, intermediate_size=16, num_labels=10)
    )  # fmt: skip
    image = PIL.Image.fromarray(np.zeros((40, 40), dtype=np.uint8))
    assert image_transforms(vit, train=False)(image).shape == (1, 8, 8)  # the config's input size, not 40 x 40
    vit.save_pretrained(tmp_path / "vit")  # no image processor saved beside it
    reloaded = ViTForImageClassification.from_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match="no image processor saved.*AutoImageProcessor.from_pretrained"):
        image_transforms(reloaded)
    assert image_transforms(reloaded, image_size=16, train=False)(image).shape == (1, 16, 16)


def test_transforms_run_in_the_dataloader_workers(digits, tmp_path):
    """The transforms are lazy, so a DataLoader with workers (Trainer's `dataloader_num_workers`) runs them there."""
    transform = image_transforms(None, image_size=8)

    def recording(image):
        (tmp_path / f"pid-{os.getpid()}").touch()
        return transform(image)

    data = with_image_transform(digits["train"].select(range(64)), recording)
    loader = torch.utils.data.DataLoader(data, batch_size=16, num_workers=2, collate_fn=MentorNetCollator())
    assert sum(batch["pixel_values"].shape[0] for batch in loader) == 64
    pids = {int(path.name.split("-")[1]) for path in tmp_path.glob("pid-*")}
    assert len(pids) == 2 and os.getpid() not in pids
