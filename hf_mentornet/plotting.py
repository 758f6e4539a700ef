"""Figures of a MentorNet: its weight over the features as training progresses (a heatmap over the region a student
reaches, or the paper's Fig. 4 surface) and histograms of the weights of clean and noisy samples. Drawn to PNG files with matplotlib's Agg renderer."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

# `Figure` without pyplot renders with Agg and leaves the caller's pyplot backend and figures alone.
from matplotlib.figure import Figure
from transformers.utils import logging

from .modeling_mentornet import MentorNetModel

logger = logging.get_logger(__name__)

__all__ = ["plot_curriculum", "plot_weight_histogram", "plot_weights_over_training"]

DEFAULT_LOSSES = tuple(np.linspace(0.0, 10.0, 51))
DEFAULT_LOSS_DIFFS = tuple(np.linspace(-5.0, 5.0, 51))
# The heatmap's axes: the loss, and the moving loss percentile `l_pt` it is compared with (loss_diff = loss - l_pt).
# A student's percentile is >= 0 and, with m classes, starts near log(m): 6 covers up to ~400 classes' start.
HEATMAP_LOSSES = tuple(np.linspace(0.0, 8.0, 161))
HEATMAP_PERCENTILES = tuple(np.linspace(0.0, 6.0, 121))
VIEWS = ("heatmap", "surface")


def plot_curriculum(
    model: MentorNetModel,
    path: str | os.PathLike,
    epochs: Sequence[int] = (10, 50, 90),
    losses: Sequence[float] | None = None,
    loss_diffs: Sequence[float] | None = None,
    view: str = "heatmap",
) -> str | os.PathLike:
    """Draw the MentorNet's weight at a few points of training progress, one panel each, and save the figure.

    - `view="heatmap"` (default): the weight over the loss (x) and the moving loss percentile it is compared with,
      `l_pt = loss - loss_diff` (y), which covers exactly the (loss, loss_diff) pairs a student produces (`l_pt` is
      a loss, >= 0), with the 0.5 contour (the selection boundary) and a colorbar;
    - `view="surface"`: the paper's Fig. 4, a 3-D surface over (loss, loss_diff), including pairs no student
      produces.

    The epoch feature is the one the trainer feeds: with `config.fixed_epoch_after_burn_in` it stays at the burn-in
    epoch, so such a curriculum's later panels are alike by design (said in their titles). With a loss history
    (`config.num_steps > 1`) the history is held constant at the plotted loss.

    Args:
        model (`MentorNetModel`): the curriculum to draw.
        path (`str` or `os.PathLike`): where to write the image.
        epochs (`Sequence[int]`, *optional*, defaults to `(10, 50, 90)`): training progress (0..99) of each panel.
        losses, loss_diffs (`Sequence[float]`, *optional*): the grid (`loss_diffs`: the surface's; the heatmap's
            second axis is `l_pt` over [0, 6]).
        view (`str`, *optional*, defaults to `"heatmap"`): `"heatmap"` or `"surface"`.

    Returns:
        The `path` written.
    """
    if view not in VIEWS:
        raise ValueError(f"`view`={view!r} is not a view; use one of {VIEWS}.")
    heatmap = view == "heatmap"
    x = np.asarray(losses or (HEATMAP_LOSSES if heatmap else DEFAULT_LOSSES), dtype=np.float32)
    y = np.asarray(HEATMAP_PERCENTILES if heatmap else (loss_diffs or DEFAULT_LOSS_DIFFS), dtype=np.float32)
    x_grid, y_grid = np.meshgrid(x, y)
    diff_grid = x_grid - y_grid if heatmap else y_grid
    steps = model.config.num_steps
    loss = torch.from_numpy(x_grid.reshape(-1, 1)).repeat(1, steps)
    loss_diff = torch.from_numpy(diff_grid.reshape(-1, 1)).repeat(1, steps)
    config = model.config
    burn_in_epoch = int(100 * config.burn_in_fraction) if config.fixed_epoch_after_burn_in else None
    name = config.curriculum_name or "MentorNet"
    figure = Figure(figsize=(4.2 * len(epochs) + (1.0 if heatmap else 0.0), 4.2), layout="constrained")
    for panel, epoch in enumerate(epochs, start=1):
        fed = int(epoch) if burn_in_epoch is None else min(int(epoch), burn_in_epoch)
        with torch.no_grad():
            weights = model(loss, loss_diff, fed).weights.float().numpy().reshape(x_grid.shape)
        title = f"{name}\nprogress {epoch}%" + ("" if fed == int(epoch) else f" (epoch feature {fed})")
        if heatmap:
            axes = figure.add_subplot(1, len(epochs), panel)
            image = axes.pcolormesh(x_grid, y_grid, weights, cmap="viridis", vmin=0.0, vmax=1.0, shading="auto")
            if weights.min() < 0.5 < weights.max():
                axes.contour(x_grid, y_grid, weights, levels=[0.5], colors="white", linewidths=1.5)
            axes.plot(x, x, color="white", linestyle=":", linewidth=1)  # loss_diff = 0: the loss at the percentile
            axes.set(xlabel="loss", ylabel="moving loss percentile l_pt", title=title, ylim=(y[0], y[-1]))
        else:
            axes = figure.add_subplot(1, len(epochs), panel, projection="3d")
            axes.plot_surface(x_grid, y_grid, weights, cmap="viridis", vmin=0.0, vmax=1.0, linewidth=0)
            axes.set(xlabel="loss", ylabel="loss_diff", zlabel="weight", zlim=(0.0, 1.0), title=title)
    if heatmap:
        figure.colorbar(image, ax=figure.axes, label="weight (white: 0.5; dotted: loss = l_pt)")
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


def plot_weights_over_training(
    log_history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "Weights over training"
) -> str | os.PathLike | None:
    """The mean weight given to samples with a right and with a corrupted label, per epoch, from a trainer's
    `state.log_history` (its `mentornet/mean_weight_clean` / `mentornet/mean_weight_noisy` logs, so the data must
    carry `clean_label`), with the test accuracy per epoch when it was evaluated; saved as an image.

    Args:
        log_history (`Sequence[dict]`): `trainer.state.log_history`.
        path (`str` or `os.PathLike`): where to write the image.
        title (`str`, *optional*): the figure's title.

    Returns:
        The `path` written, or `None` (with a warning) when the run logged no such weights.
    """
    by_epoch: dict[int, dict[str, list[float]]] = {}
    for entry in log_history:
        epoch = int(np.ceil(entry.get("epoch", 0.0)))
        for key in ("mentornet/mean_weight_clean", "mentornet/mean_weight_noisy", "eval_top1_accuracy"):
            if key in entry:
                by_epoch.setdefault(epoch, {}).setdefault(key, []).append(entry[key])
    if not any("mentornet/mean_weight_clean" in values for values in by_epoch.values()):
        logger.warning(
            f"No figure at {os.fspath(path)!r}: the run logged no `mentornet/mean_weight_clean`. It needs a "
            "`clean_label` column (hf_mentornet.inject_label_noise, or with_verified_labels for verified rows) and a "
            "logging step after burn-in (lower `logging_steps`)."
        )
        return None
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    lines = (
        ("mentornet/mean_weight_clean", "right labels", "tab:blue"),
        ("mentornet/mean_weight_noisy", "corrupted labels", "tab:red"),
        ("eval_top1_accuracy", "test accuracy", "black"),
    )
    for key, label, color in lines:
        points = sorted((epoch, float(np.mean(values[key]))) for epoch, values in by_epoch.items() if key in values)
        if points:
            style = "--" if key == "eval_top1_accuracy" else "-"
            axes.plot(*zip(*points, strict=True), style, color=color, label=label, marker=".")
    axes.set(xlabel="epoch", ylabel="mean weight / accuracy", ylim=(0.0, 1.02), title=title)
    axes.legend()
    figure.savefig(path, dpi=100)
    return path
