"""Figures of a MentorNet: its weight surface over (loss, loss_diff) as training progresses (the paper's Fig. 4) and
histograms of the weights of clean and noisy samples. Drawn to PNG files with matplotlib's Agg renderer."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

# `Figure` without pyplot renders with Agg and leaves the caller's pyplot backend and figures alone.
from matplotlib.figure import Figure

from .modeling_mentornet import MentorNetModel

__all__ = ["plot_curriculum", "plot_weight_histogram"]

DEFAULT_LOSSES = tuple(np.linspace(0.0, 10.0, 51))
DEFAULT_LOSS_DIFFS = tuple(np.linspace(-5.0, 5.0, 51))


def plot_curriculum(
    model: MentorNetModel,
    path: str | os.PathLike,
    epochs: Sequence[int] = (10, 50, 90),
    losses: Sequence[float] = DEFAULT_LOSSES,
    loss_diffs: Sequence[float] = DEFAULT_LOSS_DIFFS,
) -> str | os.PathLike:
    """Draw the MentorNet's weight as a 3-D surface over (loss, loss_diff), one panel per training-progress point,
    as the paper's Fig. 4, and save it as a PNG.

    With a loss history (`config.num_steps > 1`) the history is held constant at the plotted loss.

    Args:
        model (`MentorNetModel`): the curriculum to draw.
        path (`str` or `os.PathLike`): where to write the PNG.
        epochs (`Sequence[int]`, *optional*, defaults to `(10, 50, 90)`): training progress (0..99) of each panel.
        losses, loss_diffs (`Sequence[float]`, *optional*): the grid, by default 51 points over [0, 10] and [-5, 5].

    Returns:
        The `path` written.
    """
    loss_grid, diff_grid = np.meshgrid(np.asarray(losses, dtype=np.float32), np.asarray(loss_diffs, dtype=np.float32))
    steps = model.config.num_steps
    loss = torch.from_numpy(loss_grid.reshape(-1, 1)).repeat(1, steps)
    loss_diff = torch.from_numpy(diff_grid.reshape(-1, 1)).repeat(1, steps)
    figure = Figure(figsize=(4.5 * len(epochs), 4.2))
    name = model.config.curriculum_name or "MentorNet"
    for panel, epoch in enumerate(epochs, start=1):
        with torch.no_grad():
            weights = model(loss, loss_diff, int(epoch)).weights.float().numpy().reshape(loss_grid.shape)
        axes = figure.add_subplot(1, len(epochs), panel, projection="3d")
        axes.plot_surface(loss_grid, diff_grid, weights, cmap="viridis", vmin=0.0, vmax=1.0, linewidth=0)
        axes.set(xlabel="loss", ylabel="loss_diff", zlabel="weight", zlim=(0.0, 1.0), title=f"{name}, epoch {epoch}%")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def plot_weight_histogram(
    weights: torch.Tensor | np.ndarray, is_noisy: torch.Tensor | np.ndarray, path: str | os.PathLike, bins: int = 50
) -> str | os.PathLike:
    """Histograms of the MentorNet weights of clean and of noisy-labelled samples, overlaid, saved as a PNG.

    Args:
        weights (`torch.Tensor` or `np.ndarray` of shape `(n,)`): sample weights in [0, 1].
        is_noisy (`torch.Tensor` or `np.ndarray` of shape `(n,)`): whether each sample's label is corrupted.
        path (`str` or `os.PathLike`): where to write the PNG.
        bins (`int`, *optional*, defaults to 50): histogram bins over [0, 1].

    Returns:
        The `path` written.
    """
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    is_noisy = np.asarray(is_noisy).astype(bool).reshape(-1)
    if weights.shape != is_noisy.shape:
        raise ValueError(
            f"`weights` has {weights.size} values but `is_noisy` {is_noisy.size}; pass one flag per sample."
        )
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for mask, label, color in ((~is_noisy, "clean", "tab:blue"), (is_noisy, "noisy", "tab:red")):
        axes.hist(weights[mask], bins=bins, range=(0.0, 1.0), alpha=0.6, color=color, label=f"{label} ({mask.sum()})")
    axes.set(xlabel="MentorNet weight", ylabel="samples", title="Weights of clean and noisy samples")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
