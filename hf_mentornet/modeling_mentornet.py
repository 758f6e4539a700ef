"""MentorNet (Jiang et al., ICML 2018, Fig. 1) as a transformers model."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from .configuration_mentornet import MentorNetConfig
from .hub import model_card, push_curriculum_to_hub, resolve_curriculum_path

__all__ = ["MentorNetModel", "MentorNetOutput", "MentorNetPreTrainedModel"]


@dataclass
class MentorNetOutput(ModelOutput):
    """
    Output of [`MentorNetModel`].

    Args:
        logits (`torch.FloatTensor` of shape `(batch_size,)`): the pre-sigmoid sample weights.
        weights (`torch.FloatTensor` of shape `(batch_size,)`): the sample weights `sigmoid(logits)`, in [0, 1].
    """

    logits: torch.FloatTensor | None = None
    weights: torch.FloatTensor | None = None


@contextlib.contextmanager
def _without_progress_bars() -> Iterator[None]:
    """transformers draws a progress bar for every load and save; for a MentorNet of a few kB (at every checkpoint)
    they are only noise on the console."""
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


class MentorNetPreTrainedModel(PreTrainedModel):
    config_class = MentorNetConfig
    base_model_prefix = "mentornet"
    main_input_name = "loss"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Glorot-uniform weights and zero biases, as TensorFlow's defaults in the released implementation.
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)  # forget bias 0, as the released code
        elif isinstance(module, nn.Embedding):
            init.xavier_uniform_(module.weight)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """As [`PreTrainedModel.from_pretrained`], and also takes the name of a shipped curriculum
        (see [`shipped_curricula`]), which loads offline."""
        with _without_progress_bars():
            return super().from_pretrained(resolve_curriculum_path(pretrained_model_name_or_path), *args, **kwargs)


class MentorNetModel(MentorNetPreTrainedModel):
    r"""
    MentorNet: maps the features of each sample to a weight in [0, 1].

    Per sample: a bidirectional LSTM reads the `[loss, loss_diff]` history (`config.num_steps` steps, the last one
    current) and its two final hidden states are concatenated with a label embedding and an epoch (training
    progress) embedding; `fc1` (tanh) and `fc2` give a logit and the weight is its sigmoid.

    Unlike the authors' released code, whose output bias is added to the `fc2` weight matrix instead of to the
    output (so it never acts as a bias), `fc2` here has an ordinary bias.
    """

    def __init__(self, config: MentorNetConfig) -> None:
        super().__init__(config)
        self.lstm = nn.LSTM(input_size=2, hidden_size=config.hidden_size, batch_first=True, bidirectional=True)
        self.label_embedding = nn.Embedding(config.label_vocab_size, config.label_embedding_size)
        self.epoch_embedding = nn.Embedding(config.num_epochs, config.epoch_embedding_size)
        self.epoch_embedding.weight.requires_grad_(config.trainable_epoch_embedding)
        features = 2 * config.hidden_size + config.label_embedding_size + config.epoch_embedding_size
        self.fc1 = nn.Linear(features, config.fc_hidden_size)
        self.fc2 = nn.Linear(config.fc_hidden_size, 1)
        self.post_init()

    def _check_inputs(
        self,
        loss: torch.Tensor,
        loss_diff: torch.Tensor,
        epoch: torch.Tensor,
        label: torch.Tensor,
        check_values: bool,
    ) -> None:
        steps = self.config.num_steps
        for name, value in (("loss", loss), ("loss_diff", loss_diff)):
            if not value.is_floating_point():
                raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {value.dtype}.")
            if value.dim() != 2 or value.shape[1] != steps:
                raise ValueError(
                    f"`{name}` has shape {tuple(value.shape)}; this MentorNet reads a history of num_steps={steps}, "
                    f"so pass shape (batch_size, {steps})" + (" or (batch_size,)." if steps == 1 else ".")
                )
        if loss_diff.shape != loss.shape:
            raise ValueError(f"`loss_diff` shape {tuple(loss_diff.shape)} differs from `loss` {tuple(loss.shape)}.")
        ranges = (("epoch", epoch, self.config.num_epochs), ("label", label, self.config.label_vocab_size))
        for name, value, _ in ranges:
            if value.is_floating_point() or value.is_complex():
                raise TypeError(f"`{name}` must be an integer tensor, got dtype {value.dtype}.")
            if value.shape != loss.shape[:1]:
                raise ValueError(f"`{name}` has shape {tuple(value.shape)}, expected ({loss.shape[0]},).")
        if not check_values:
            return
        # The value checks in one reduction, one host sync on a GPU. Which input is at fault is worked out only
        # when one is.
        valid = torch.isfinite(loss).all() & torch.isfinite(loss_diff).all()
        for _, value, size in ranges:
            valid &= ((value >= 0) & (value < size)).all()
        if valid:
            return
        for name, value in (("loss", loss), ("loss_diff", loss_diff)):
            if not torch.isfinite(value).all():
                raise ValueError(f"`{name}` contains NaN or inf; check the student's loss before weighting it.")
        for name, value, size in ranges:
            if value.min() < 0 or value.max() >= size:
                raise ValueError(
                    f"`{name}` values must be in 0..{size - 1}, got {int(value.min())}..{int(value.max())}"
                    + (
                        ": training progress is floor(100 * step / max_steps), clipped at 99."
                        if name == "epoch"
                        else "."
                    )
                )

    def forward(
        self,
        loss: torch.Tensor,
        loss_diff: torch.Tensor,
        epoch: torch.Tensor | int,
        label: torch.Tensor | None = None,
        return_dict: bool | None = None,
        check_values: bool = True,
    ) -> MentorNetOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            loss (`torch.FloatTensor` of shape `(batch_size,)` or `(batch_size, num_steps)`):
                The student's per-sample loss (history, oldest first).
            loss_diff (`torch.FloatTensor`, same shape as `loss`):
                `loss` minus the moving average of the p-th percentile of the mini-batch losses.
            epoch (`torch.LongTensor` of shape `(batch_size,)`, or `int`):
                Training progress as an integer percentage in `[0, config.num_epochs)`.
            label (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Label-embedding index; defaults to 0 for every sample, as the released code.
            check_values (`bool`, *optional*, defaults to `True`):
                Check that the losses are finite and the indices in range (shapes and dtypes are always checked).
                The check reads the values, a host synchronisation on a GPU: [`MentorNetTrainer`], whose features
                are finite and in range by construction, checks its first batch only.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # 1-D features are one step; with a longer history they fail the shape check with the shape as given.
        if loss.dim() == 1 and self.config.num_steps == 1:
            loss, loss_diff = loss.unsqueeze(1), loss_diff.unsqueeze(1)
        if isinstance(epoch, int):
            epoch = torch.full(loss.shape[:1], epoch, dtype=torch.long, device=loss.device)
        if label is None:
            label = torch.zeros(loss.shape[:1], dtype=torch.long, device=loss.device)
        self._check_inputs(loss, loss_diff, epoch, label, check_values)

        dtype = self.fc1.weight.dtype
        _, (hidden, _) = self.lstm(torch.stack([loss, loss_diff], dim=-1).to(dtype))
        # hidden: (2, batch, hidden_size), the final states of the forward and backward directions.
        lstm_features = hidden.transpose(0, 1).reshape(loss.shape[0], -1)
        features = torch.cat([self.label_embedding(label), self.epoch_embedding(epoch), lstm_features], dim=-1)
        logits = self.fc2(torch.tanh(self.fc1(features))).squeeze(-1)
        weights = torch.sigmoid(logits)
        if not return_dict:
            return logits, weights
        return MentorNetOutput(logits=logits, weights=weights)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """As [`PreTrainedModel.save_pretrained`], and also writes the model card, `README.md` (see
        [`model_card`]), whose usage snippet loads from `repo_id` if given, else from `save_directory`. With
        `push_to_hub=True`, the model is pushed by [`~MentorNetModel.push_to_hub`] (to `repo_id`, defaulting to the
        directory's name), so the card goes with it."""
        push_to_hub = kwargs.pop("push_to_hub", False)
        repo_id = kwargs.pop("repo_id", None)
        with _without_progress_bars():
            super().save_pretrained(save_directory, *args, **kwargs)
        model_id = repo_id or os.fspath(save_directory)
        Path(save_directory, "README.md").write_text(model_card(self.config, model_id), encoding="utf-8")
        if push_to_hub:
            self.push_to_hub(repo_id or Path(save_directory).name, token=kwargs.get("token"))

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload the MentorNet and its model card: [`hf_mentornet.hub.push_curriculum_to_hub`] (the inherited
        method would replace `README.md` with the card already on the Hub or a generic one)."""
        return push_curriculum_to_hub(self, repo_id, **kwargs)
