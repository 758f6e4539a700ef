"""Building a StudentNet by name: any timm model or transformers image classifier, randomly initialised (the
paper trains its students from scratch) or from a pretrained checkpoint."""

from __future__ import annotations

import os
from typing import Any

import timm
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

__all__ = ["build_student", "student_logits"]


def build_student(
    name: str,
    num_labels: int,
    *,
    num_channels: int = 3,
    pretrained: bool = False,
    **model_kwargs: Any,
) -> nn.Module:
    """Build an image classifier from a name.

    Args:
        name (`str`):
            `"timm/<model>"` (e.g. `"timm/resnet18"`, `"timm/inception_resnet_v2"`) for a timm model,
            `"transformers/<model_type>"` (e.g. `"transformers/resnet"`) for a transformers image classifier built
            from its default configuration, or a local directory / Hub id holding a transformers checkpoint
            (loaded with `from_pretrained`; a head of another size than `num_labels` is an error unless
            `ignore_mismatched_sizes=True` is passed, which gives it a new head).
        num_labels (`int`): number of classes.
        num_channels (`int`, *optional*, defaults to 3): input channels (1 for grayscale data).
        pretrained (`bool`, *optional*, defaults to `False`): load timm's pretrained weights (needs the Hub).
        model_kwargs: passed to `timm.create_model` or to the transformers configuration, e.g.
            `hidden_sizes=[32, 64, 128], depths=[1, 1, 1]` for a small `transformers/resnet`.
    """
    family, _, model_name = name.partition("/")
    if family == "timm":
        if not timm.is_model(model_name):
            raise ValueError(
                f"`student`={name!r}: timm has no model {model_name!r}; see `timm.list_models()` for the names, "
                "e.g. 'timm/resnet18'."
            )
        return timm.create_model(
            model_name, pretrained=pretrained, num_classes=num_labels, in_chans=num_channels, **model_kwargs
        )
    if family == "transformers" and not os.path.isdir(name):
        if model_name not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
            raise ValueError(
                f"`student`={name!r}: {model_name!r} is not a transformers image-classification model type; "
                f"valid ones include {', '.join(sorted(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)[:12])}, ..."
            )
        config = AutoConfig.for_model(model_name, num_labels=num_labels, num_channels=num_channels, **model_kwargs)
        return AutoModelForImageClassification.from_config(config)
    try:
        return AutoModelForImageClassification.from_pretrained(name, num_labels=num_labels, **model_kwargs)
    except RuntimeError as error:
        if "ignore_mismatched_sizes" not in str(error):
            raise
        raise ValueError(
            f"`student`={name!r} is a checkpoint whose classifier head has another number of classes than the data's "
            f"{num_labels}. To fine-tune it on these classes with a new, randomly initialised head, pass "
            "`ignore_mismatched_sizes=True` (recipes: --student_kwargs '{\"ignore_mismatched_sizes\": true}')."
        ) from error
    except OSError as error:
        raise ValueError(
            f"`student`={name!r} is neither 'timm/<model>', 'transformers/<model_type>', a local checkpoint "
            f"directory, nor a Hub id that could be loaded ({error}). Offline, a Hub id loads only from the cache."
        ) from error


def student_logits(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """The logits of a transformers image classifier (`model(pixel_values=...).logits`) or of a plain module such
    as a timm model (`model(pixel_values)`)."""
    if isinstance(model, PreTrainedModel):
        return model(pixel_values=pixel_values).logits
    return model(pixel_values)
