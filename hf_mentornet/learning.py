"""Learning a MentorNet (Jiang et al., ICML 2018, Sec. 3.1 and Appendix D): approximate a predefined curriculum by
mean squared error on the enumerated feature space, or learn a data-driven curriculum from a student's records by
sigmoid cross-entropy against `v* = 1[given label == clean label]`.

The optimiser is the paper's (Adam, learning rate 0.1, staircase exponential decay x0.9, gradient-norm clip 5), but
the defaults take far fewer, far larger batches than the paper's 30k steps of 32 samples: on a CPU the bidirectional
LSTM's per-call overhead dominates a batch of 32 (a step of 32 samples costs about half as much as one of 2,048), so
30k small steps take several minutes, while 3k steps of 2,048 samples reach the paper's errors (measured by the
project's curriculum-fit benchmark) in 10-20 seconds. The decay interval scales with the number of steps so that the
learning rate is annealed as in the paper (30 decays over the run), and a short linear warm-up (not in the paper) avoids an
occasional collapse at the start. Pass `max_steps=30_000, batch_size=32, decay_steps=1000, warmup_steps=0` for the
paper's exact settings.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from torch import nn
from transformers import set_seed
from transformers.utils import logging

from .configuration_mentornet import DD_DROPOUT_SCHEDULE, MentorNetConfig
from .curricula import curriculum_weights, feature_grid, validate_curriculum_name
from .data import MentorNetCollator, image_transforms, with_image_transform
from .features import loss_diff_column
from .modeling_mentornet import MentorNetModel
from .noise import inject_label_noise
from .weighted_trainer import WeightedLossArguments, WeightedLossTrainer

__all__ = ["curriculum_mse", "heldout_rows", "learn_data_driven_curriculum", "learn_from_records", "learn_predefined"]

logger = logging.get_logger(__name__)

RECORD_COLUMNS = ("epoch", "label", "clean_label", "loss")
ARCHITECTURE_KEYS = (
    "hidden_size",
    "num_steps",
    "label_vocab_size",
    "label_embedding_size",
    "num_epochs",
    "epoch_embedding_size",
    "fc_hidden_size",
)
DEFAULT_PERCENTILES = (40, 50, 60, 75, 80, 90)
LOSS_DIFF_REFERENCES = ("trainer", "epoch", "all")
DD_TARGETS = ("posterior", "balanced", "monotone", "threshold")
# The paper decays the learning rate 30 times over 30k steps; the defaults keep the 30 decays over fewer steps.
NUM_DECAYS = 30


def _new_model(config: MentorNetConfig | None, init_model: MentorNetModel | None, seed: int) -> MentorNetModel:
    """A fresh, seeded MentorNet, or a copy of `init_model` (never mutated) to warm-start from."""
    if init_model is not None:
        model = copy.deepcopy(init_model)
        if config is not None:
            different = [key for key in ARCHITECTURE_KEYS if getattr(config, key) != getattr(model.config, key)]
            if different:
                raise ValueError(
                    f"`config` differs from `init_model`'s architecture in {different}; pass a config with the same "
                    "architecture, or config=None to keep the model's."
                )
            model.config = copy.deepcopy(config)
            model.epoch_embedding.weight.requires_grad_(config.trainable_epoch_embedding)
        return model
    config = copy.deepcopy(config) if config is not None else MentorNetConfig(trainable_epoch_embedding=True)
    # Seed the initialisation (the frozen epoch embedding included) without touching the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MentorNetModel(config)


def _as_2d(value: torch.Tensor) -> torch.Tensor:
    return value.unsqueeze(1) if value.dim() == 1 else value


def _logits(model: MentorNetModel, features: dict[str, torch.Tensor], batch_size: int = 65_536) -> torch.Tensor:
    """Logits for a whole feature set, in chunks, without gradients."""
    with torch.no_grad():
        return torch.cat(
            [
                model(
                    features["loss"][start : start + batch_size],
                    features["loss_diff"][start : start + batch_size],
                    features["epoch"][start : start + batch_size],
                    features["label"][start : start + batch_size],
                ).logits
                for start in range(0, len(features["epoch"]), batch_size)
            ]
        )


def _objective(
    logits: torch.Tensor, targets: torch.Tensor, objective: str, weights: torch.Tensor | None = None
) -> torch.Tensor:
    if objective == "mse":
        return F.mse_loss(torch.sigmoid(logits), targets)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)


def _fit(
    model: MentorNetModel,
    features: dict[str, torch.Tensor],
    targets: torch.Tensor,
    objective: str,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    decay_steps: int | None,
    decay_rate: float,
    warmup_steps: int,
    max_grad_norm: float,
    seed: int,
    weights: torch.Tensor | None = None,
) -> int:
    """Adam with linear warm-up, staircase exponential decay and gradient-norm clipping, on shuffled passes over
    `features`.
    Returns the number of steps taken."""
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}`={value!r} must be a positive integer.")
    decay_steps = decay_steps or max(1, max_steps // NUM_DECAYS)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    # Linear warm-up, then the paper's staircase decay.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / max(1, warmup_steps)) * decay_rate ** (step // decay_steps),
    )
    generator = torch.Generator().manual_seed(seed)
    num_examples = len(targets)
    batch_size = min(batch_size, num_examples)
    model.train()
    step = 0
    progress = logging.tqdm(total=max_steps, desc="Learning the MentorNet", leave=False)
    while step < max_steps:
        order = torch.randperm(num_examples, generator=generator)
        for start in range(0, num_examples - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            logits = model(
                features["loss"][index],
                features["loss_diff"][index],
                features["epoch"][index],
                features["label"][index],
            ).logits
            loss = _objective(logits, targets[index], objective, None if weights is None else weights[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            progress.update(1)
            if step == max_steps:
                break
    progress.close()
    model.eval()
    return step


def _split(features: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[index] for key, value in features.items()}


def _fit_and_score(
    model: MentorNetModel,
    data: dict[str, torch.Tensor],
    targets: torch.Tensor,
    train_index: torch.Tensor,
    test_index: torch.Tensor,
    objective: str,
    *,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    decay_steps: int | None,
    decay_rate: float,
    warmup_steps: int,
    max_grad_norm: float,
    seed: int,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Fit `model` on the `train_index` rows; return its logits on the training and the test rows, and the
    optimisation's part of the metrics."""
    train, test = _split(data, train_index), _split(data, test_index)
    steps = _fit(
        model,
        train,
        targets[train_index],
        objective,
        max_steps,
        batch_size,
        learning_rate,
        decay_steps,
        decay_rate,
        warmup_steps,
        max_grad_norm,
        seed,
        None if weights is None else weights[train_index],
    )
    record = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
    train_logits, test_logits = _logits(model, train), _logits(model, test)
    if not (torch.isfinite(train_logits).all() and torch.isfinite(test_logits).all()):
        raise ValueError(
            f"Learning the MentorNet diverged (it outputs NaN or inf after {steps} steps at learning_rate="
            f"{learning_rate}); nothing is returned or saved. Lower `learning_rate` or check the targets."
        )
    return train_logits, test_logits, record


def learn_predefined(
    curriculum: str,
    params: Mapping[str, Any] | None = None,
    config: MentorNetConfig | None = None,
    *,
    num_samples: int = 100_000,
    max_steps: int = 3_000,
    batch_size: int = 2_048,
    learning_rate: float = 0.1,
    decay_steps: int | None = None,
    decay_rate: float = 0.9,
    warmup_steps: int = 100,
    max_grad_norm: float = 5.0,
    seed: int = 0,
    init_model: MentorNetModel | None = None,
    features: Mapping[str, torch.Tensor] | None = None,
) -> tuple[MentorNetModel, dict[str, Any]]:
    r"""
    Learn a MentorNet that approximates a predefined curriculum (paper Sec. 3.1, Appendix D) by minimising the mean
    squared error between its weights and the curriculum's, on an 80/20 train/test split of the features.

    Args:
        curriculum (`str`):
            A key of [`CURRICULA`], e.g. `"mentornet-pd"`, `"self-paced"`, `"focal"`.
        params (`Mapping[str, Any]`, *optional*):
            The curriculum's parameters, e.g. `{"gamma": 2.0}` for focal; the function's defaults otherwise.
        config (`MentorNetConfig`, *optional*):
            Architecture and training settings of the new MentorNet (copied). Defaults to the released architecture
            with `trainable_epoch_embedding=True`: the released code freezes the epoch embedding at its random
            initialisation, and a frozen random 5-d embedding barely separates ranges of training progress (test
            MSE 9e-3 instead of 7e-7 on the temporal mixture, 1.4e-3 instead of 4e-6 on MentorNet PD). With
            `init_model`, defaults to that model's config.
        num_samples (`int`, *optional*, defaults to 100,000):
            Points sampled from the enumerated feature space ([`feature_grid`]), as the released code.
        max_steps (`int`, *optional*, defaults to 3,000):
            Optimisation steps. The paper: 30,000.
        batch_size (`int`, *optional*, defaults to 2,048):
            The paper: 32. Large batches make the CPU fit take seconds instead of minutes (see the module docstring).
        learning_rate (`float`, *optional*, defaults to 0.1):
            Initial Adam learning rate, as the paper.
        decay_steps (`int`, *optional*):
            Steps between x`decay_rate` learning-rate decays; defaults to `max_steps // 30`, so that the learning
            rate decays 30 times over the run as in the paper (1000 of 30,000 steps).
        decay_rate (`float`, *optional*, defaults to 0.9):
            Staircase decay factor, as the paper.
        warmup_steps (`int`, *optional*, defaults to 100):
            Steps of linear learning-rate warm-up; the paper has none (0). Without it, Adam at 0.1 from a fresh
            initialisation now and then saturates the small network for good (the temporal mixture, seed 4: test MSE
            0.25, a constant 0.5, instead of 7e-7).
        max_grad_norm (`float`, *optional*, defaults to 5.0):
            Gradient-norm clip, as the paper.
        seed (`int`, *optional*, defaults to 0):
            Seeds the feature grid, the split, the initialisation and the batch order.
        init_model (`MentorNetModel`, *optional*):
            Warm-start from this MentorNet (it is copied, not modified), e.g. to update a curriculum during training.
        features (`Mapping[str, torch.Tensor]`, *optional*):
            Fit on these features instead of the grid: `loss`, `loss_diff` (`(n,)` or `(n, num_steps)` floats),
            `epoch` and optionally `label` (`(n,)` integers), e.g. a student's recorded features (the paper's
            curriculum update, Algorithm 1 step 6).

    Returns:
        `tuple[MentorNetModel, dict]`: the MentorNet in eval mode, its config's provenance filled in
        (`curriculum_name`, `curriculum_kind="predefined"`, `curriculum_params`, `learned_from`), and the metrics
        (`train_mse`, `test_mse`, `steps`, `seed`, `seconds`, ...).

    Example:

    ```python
    >>> from hf_mentornet.learning import learn_predefined
    >>> model, metrics = learn_predefined("focal", {"gamma": 2.0})
    >>> metrics["test_mse"] < 1e-4
    True
    ```
    """
    start_time = time.perf_counter()
    validate_curriculum_name(curriculum)
    params = dict(params or {})
    model = _new_model(config, init_model, seed)
    num_steps = model.config.num_steps
    if features is None:
        data = feature_grid(num_samples, num_steps=num_steps, seed=seed)
        source = "feature-grid"
    else:
        missing = [key for key in ("loss", "loss_diff", "epoch") if key not in features]
        if missing:
            raise ValueError(
                f"`features` lacks {missing}; pass a dict with `loss`, `loss_diff` (float tensors), `epoch` and "
                "optionally `label` (integer tensors), as recorded from the student."
            )
        data = {
            "loss": _as_2d(torch.as_tensor(features["loss"], dtype=torch.float32)),
            "loss_diff": _as_2d(torch.as_tensor(features["loss_diff"], dtype=torch.float32)),
            "epoch": torch.as_tensor(features["epoch"]),
        }
        data["label"] = (
            torch.as_tensor(features["label"])
            if features.get("label") is not None
            else torch.zeros(len(data["epoch"]), dtype=torch.long)
        )
        source = "student-features"
    data = {key: value.to(model.device) for key, value in data.items()}  # a warm start may live on a GPU
    # The model's own input checks, once on all the features, so that bad ones fail clearly before training.
    model._check_inputs(data["loss"], data["loss_diff"], data["epoch"], data["label"], check_values=True)
    targets = curriculum_weights(curriculum, data["loss"], data["loss_diff"], data["epoch"], data["label"], **params)
    targets = targets.float()

    num_examples = len(targets)
    if num_examples < 2:
        raise ValueError(f"Need at least 2 feature rows to fit and test a MentorNet, got {num_examples}.")
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    num_train = max(1, int(0.8 * num_examples))
    train_index, test_index = order[:num_train], order[num_train:]
    train_logits, test_logits, optimisation = _fit_and_score(
        model,
        data,
        targets,
        train_index,
        test_index,
        "mse",
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        decay_steps=decay_steps,
        decay_rate=decay_rate,
        warmup_steps=warmup_steps,
        max_grad_norm=max_grad_norm,
        seed=seed,
    )
    train_mse = F.mse_loss(torch.sigmoid(train_logits), targets[train_index]).item()
    test_mse = F.mse_loss(torch.sigmoid(test_logits), targets[test_index]).item()
    metrics = {
        "objective": "mse",
        "data": source,
        "num_samples": num_examples,
        "train_mse": train_mse,
        "test_mse": test_mse,
        **optimisation,
        "warm_start": init_model is not None,
        "seconds": round(time.perf_counter() - start_time, 2),
    }
    model.config.curriculum_name = curriculum
    model.config.curriculum_kind = "predefined"
    model.config.curriculum_params = params
    model.config.learned_from = dict(metrics)
    logger.info(f"Learned the {curriculum!r} curriculum: test MSE {test_mse:.3g} in {metrics['seconds']} s.")
    return model, metrics


def curriculum_mse(
    model: MentorNetModel,
    curriculum: str | None = None,
    params: Mapping[str, Any] | None = None,
    num_samples: int = 2_000,
    seed: int = 12_345,
) -> float:
    """Mean squared error between a MentorNet's weights and a predefined curriculum's on `num_samples` fresh points
    of the feature grid (a seed other than the training one), e.g. to check a saved curriculum.

    Args:
        model (`MentorNetModel`): the MentorNet.
        curriculum (`str`, *optional*): a key of [`CURRICULA`]; defaults to `model.config.curriculum_name`.
        params (`Mapping[str, Any]`, *optional*): the curriculum's parameters; defaults to
            `model.config.curriculum_params`.
        num_samples (`int`, *optional*, defaults to 2,000): grid points.
        seed (`int`, *optional*, defaults to 12,345): seeds the grid points.
    """
    curriculum = curriculum or model.config.curriculum_name
    if curriculum is None:
        raise ValueError("`curriculum` is required: this MentorNet's config does not name a predefined curriculum.")
    params = dict(model.config.curriculum_params if params is None else params)
    data = feature_grid(num_samples, num_steps=model.config.num_steps, seed=seed)
    targets = curriculum_weights(curriculum, data["loss"], data["loss_diff"], data["epoch"], data["label"], **params)
    return F.mse_loss(torch.sigmoid(_logits(model, data)), targets.float()).item()


def _record_column(records: Any, names: Sequence[str], name: str, kind: str) -> np.ndarray:
    """A column of `records` as a numpy array, with a clear error when it is missing or of the wrong kind."""
    if name not in names:
        raise ValueError(
            f"`records` has no `{name}` column (columns: {list(names)}). A MentorNet is learned from per-sample "
            f"student records with columns {list(RECORD_COLUMNS)} (+ `sample_index` for a loss history); "
            "rename or add the column."
        )
    values = np.asarray(records[name])
    if kind == "int" and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            f"`records['{name}']` must hold integers, got dtype {values.dtype}; cast it, e.g. `.astype('int64')`."
        )
    if kind == "float" and (values.dtype == bool or not np.issubdtype(values.dtype, np.number)):
        raise ValueError(f"`records['{name}']` must hold numbers (the per-sample loss), got dtype {values.dtype}.")
    return values


def _histories(loss: np.ndarray, epoch: np.ndarray, sample: np.ndarray, num_steps: int) -> np.ndarray:
    """`(n, num_steps)` loss histories: for each record, the same sample's losses at its last `num_steps` recorded
    epochs up to this one, oldest first; a history shorter than `num_steps` is padded with its oldest loss."""
    order = np.lexsort((epoch, sample))
    sorted_sample = sample[order]
    group_start = np.r_[True, sorted_sample[1:] != sorted_sample[:-1]]
    first = np.maximum.accumulate(np.where(group_start, np.arange(len(order)), 0))
    position = np.arange(len(order)) - first
    history = np.empty((len(order), num_steps), dtype=np.float32)
    for lag in range(num_steps):
        source = np.arange(len(order)) - np.minimum(lag, position)
        history[:, num_steps - 1 - lag] = loss[order][source]
    result = np.empty_like(history)
    result[order] = history
    return result


def _percentile_references(
    loss: np.ndarray, epoch: np.ndarray, percentiles: Sequence[float], reference: str
) -> np.ndarray:
    """`(len(percentiles), len(loss))` float32: for percentile k and record i, the k-th percentile of the losses
    recorded at record i's epoch (`reference="epoch"`) or of every recorded loss (`"all"`)."""
    if reference == "all":
        return np.repeat(np.percentile(loss, list(percentiles))[:, None], len(loss), axis=1).astype(np.float32)
    epochs, epoch_id = np.unique(epoch, return_inverse=True)
    by_epoch = np.stack([np.percentile(loss[epoch_id == e], list(percentiles)) for e in range(len(epochs))])
    return by_epoch.T[:, epoch_id].astype(np.float32)


def learn_from_records(
    records: Any,
    config: MentorNetConfig | None = None,
    *,
    curriculum_name: str = "data-driven",
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    loss_diff_reference: str = "trainer",
    target: str = "posterior",
    max_steps: int = 1_500,
    batch_size: int = 2_048,
    learning_rate: float = 0.1,
    decay_steps: int | None = None,
    decay_rate: float = 0.9,
    warmup_steps: int = 100,
    max_grad_norm: float = 5.0,
    seed: int = 0,
    init_model: MentorNetModel | None = None,
    heldout_fraction: float = 0.2,
) -> tuple[MentorNetModel, dict[str, Any]]:
    r"""
    Learn a data-driven (DD) curriculum from a student's records (paper Sec. 3.1, "Learning data-driven
    curriculums"): the MentorNet learns to tell the records of correctly labelled samples (`v* = 1[label ==
    clean_label]`) from the corrupted ones, by sigmoid cross-entropy.

    Every record is used once per percentile `p` (so the MentorNet sees the range of moving averages it meets in
    training), with label feature 0 (so it transfers across datasets, as the released code). Which `loss_diff` it
    learns from is `loss_diff_reference`:

    - `"trainer"` (default): the records' own `loss_diff_p<p>` columns, the loss minus the trainer's moving average
      of the p-th batch-loss percentile at that step, exactly the feature [`MentorNetTrainer`] serves (every trainer
      writes them with `record_student=True`). The epoch feature is the one the trainer serves too: the records'
      `mentornet_epoch` column when present, else their `epoch` clamped at the config's burn-in epoch with
      `fixed_epoch_after_burn_in`. What the curriculum learns from is what it is later given (train/serve parity).
    - `"epoch"`: the paper's "using the latest model": `loss - percentile(losses recorded at the same epoch, p)`.
    - `"all"`: the authors' released code: `loss - percentile(all recorded losses, p)`, the loss shifted by one
      constant per `p`, so the learned weight is a function of the absolute loss only and does not follow a student
      whose losses fall faster or slower than the recorded one's.

    What the MentorNet learns to output is `target`:

    - `"posterior"`: the paper's `v*` as is: the calibrated P(clean | features) under the records' share of
      corrupted labels. At 20% noise a sample the student cannot fit at all (loss ln 10 on CIFAR-10) still gets a
      weight near 0.8 from the prior alone.
    - `"balanced"`: the same cross-entropy with the clean and the corrupted records weighted to equal totals, so the
      output is the posterior under an even prior: 0.5 where a loss is as likely from a right as from a wrong label,
      whatever the noise rate.
    - `"monotone"`: the balanced posterior made to fall with `loss_diff` (isotonic regression, scikit-learn), then
      learned as a soft target: the paper's Proposition 1 (the weight never rises with the loss) by construction.
    - `"threshold"`: weight 1 below, 0 above the `loss_diff` that best separates the right from the wrong labels
      (the largest share of right labels below it minus the share of wrong labels below it: Youden's J), per
      percentile: a learned, sharp, monotone curriculum, as MentorNet PD's switch but at the place the records show.

    Records are split into training and held-out sets by sample, so the copies of one sample never straddle the
    split. The held-out metrics score the weights as a selection: `heldout_mean_weight_clean` and
    `heldout_mean_weight_noisy` (the mean weight of the right and the wrong labels) and their difference,
    `heldout_selection_quality` (Youden's J for 0/1 weights), beside AUROC and cross-entropy against `v*`.

    Args:
        records (`datasets.Dataset`, `pandas.DataFrame` or `dict` of columns):
            One row per (sample, recorded step) with `epoch` (training progress, int in 0..99), `label` (the given,
            possibly noisy label, int), `clean_label` (int) and `loss` (the student's loss on the given label);
            with `loss_diff_reference="trainer"` also `loss_diff_p<percent>` for each percentile (e.g.
            `loss_diff_p75`) and optionally `mentornet_epoch`. A `sample_index` column (int) is needed when
            `config.num_steps > 1` (loss histories are built per sample, ordered by epoch) and makes the held-out
            split by sample; without it each row is a sample.
        config (`MentorNetConfig`, *optional*):
            Architecture and training settings (copied). Defaults to the released architecture with the released
            DD command's training settings: epoch fixed after burn-in and the DD example-dropout schedule.
            Keys already in `config.learned_from` (e.g. the source dataset and student) are kept.
        curriculum_name (`str`, *optional*, defaults to `"data-driven"`):
            Recorded in the config and the model card.
        percentiles (`Sequence[float]`, *optional*, defaults to `(40, 50, 60, 75, 80, 90)`):
            Loss percentiles (in 0..100) the loss differences are taken against, as the released code.
        loss_diff_reference (`str`, *optional*, defaults to `"trainer"`):
            `"trainer"`, `"epoch"` or `"all"`, see above.
        target (`str`, *optional*, defaults to `"posterior"`):
            `"posterior"`, `"balanced"`, `"monotone"` or `"threshold"`, see above.
        max_steps (`int`, *optional*, defaults to 1,500):
            The paper: 30,000.
        batch_size (`int`, *optional*, defaults to 2,048):
            The paper: 32 (see the module docstring).
        learning_rate, decay_steps, decay_rate, warmup_steps, max_grad_norm:
            As [`learn_predefined`].
        seed (`int`, *optional*, defaults to 0):
            Seeds the split, the initialisation and the batch order.
        init_model (`MentorNetModel`, *optional*):
            Warm-start from this MentorNet (copied, not modified).
        heldout_fraction (`float`, *optional*, defaults to 0.2):
            Fraction of the samples held out to measure the curriculum.

    Returns:
        `tuple[MentorNetModel, dict]`: the MentorNet in eval mode, provenance filled in
        (`curriculum_kind="data-driven"`, `learned_from` with the records' size, realised noise rate and metrics),
        and the metrics: held-out `heldout_selection_quality`, `heldout_mean_weight_clean` / `_noisy`,
        `heldout_accuracy` (weight > 0.5 vs clean), `heldout_auroc`, `heldout_cross_entropy`,
        `train_cross_entropy`, `steps`, `seconds`, ...
    """
    start_time = time.perf_counter()
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"`heldout_fraction`={heldout_fraction!r} must be in (0, 1), e.g. 0.2.")
    if len(percentiles) == 0 or not all(0 <= p <= 100 for p in percentiles):
        raise ValueError(f"`percentiles`={tuple(percentiles)!r} must be non-empty, each in 0..100, e.g. (50, 75).")
    if loss_diff_reference not in LOSS_DIFF_REFERENCES:
        raise ValueError(
            f"`loss_diff_reference`={loss_diff_reference!r} must be one of {list(LOSS_DIFF_REFERENCES)}: 'trainer' "
            "(the records' own loss_diff_p<percent> columns, as the trainer serves them), 'epoch' (the paper: the "
            "percentile of the losses recorded at the same epoch) or 'all' (the released code: of every recorded loss)."
        )
    if target not in DD_TARGETS:
        raise ValueError(
            f"`target`={target!r} must be one of {list(DD_TARGETS)}: 'posterior' (the paper's 1[label == "
            "clean_label]), 'balanced' (clean and corrupted records weighted alike), 'monotone' (the balanced "
            "posterior made to fall with loss_diff) or 'threshold' (1 below the loss_diff that best separates them)."
        )
    if config is None and init_model is None:
        config = MentorNetConfig(fixed_epoch_after_burn_in=True, example_dropout_schedule=DD_DROPOUT_SCHEDULE)
    model = _new_model(config, init_model, seed)
    num_steps = model.config.num_steps
    if loss_diff_reference == "trainer" and num_steps > 1:
        raise ValueError(
            f"`loss_diff_reference`='trainer' serves the current loss only, but the config reads a loss history of "
            f"num_steps={num_steps}; use a config with num_steps=1, or loss_diff_reference='epoch'."
        )
    diff_columns = [loss_diff_column(p / 100) for p in percentiles] if loss_diff_reference == "trainer" else []

    if isinstance(records, datasets.Dataset):
        if len(records) == 0:
            raise ValueError("`records` is empty; record the student's per-sample losses first.")
        names = records.column_names
        # Read the needed columns at once through the numpy formatter (fast, and honours shuffles and selections).
        needed = [
            name for name in (*RECORD_COLUMNS, "sample_index", "mentornet_epoch", *diff_columns) if name in names
        ]
        records = records.select_columns(needed).with_format("numpy")[:]
    else:
        names = list(records.keys())
    epoch = _record_column(records, names, "epoch", "int")
    label = _record_column(records, names, "label", "int")
    clean_label = _record_column(records, names, "clean_label", "int")
    loss = _record_column(records, names, "loss", "float").astype(np.float32)
    missing = [name for name in diff_columns if name not in names]
    if missing:
        raise ValueError(
            f"`records` has no {missing} column(s) for `loss_diff_reference`='trainer' (columns: {list(names)}): "
            "record the student with this version's `record_student=True` (it writes loss_diff_p40 ... "
            "loss_diff_p90), pass `percentiles` among the recorded ones, or use loss_diff_reference='epoch' (the "
            "paper) / 'all' (the released code)."
        )
    if len(loss) == 0:
        raise ValueError("`records` is empty; record the student's per-sample losses first.")
    bad = np.flatnonzero(~np.isfinite(loss))
    if len(bad):
        raise ValueError(
            f"`records['loss']` has {len(bad)} NaN/inf values (first at row {bad[0]}: {loss[bad[0]]}); "
            "drop those rows or fix the student's loss."
        )
    bad = np.flatnonzero((epoch < 0) | (epoch >= model.config.num_epochs))
    if len(bad):
        raise ValueError(
            f"`records['epoch']` must be training progress in 0..{model.config.num_epochs - 1}, got {epoch[bad[0]]} "
            f"at row {bad[0]}; use floor(100 * step / max_steps), clipped at 99."
        )
    if "sample_index" in names:
        sample = _record_column(records, names, "sample_index", "int")
    elif num_steps > 1:
        raise ValueError(
            f"`records` has no `sample_index` column, needed to build loss histories for num_steps={num_steps}; "
            "add the sample's index in the dataset to each record, or use a config with num_steps=1."
        )
    else:
        sample = np.arange(len(loss))
    history = _histories(loss, epoch, sample, num_steps) if num_steps > 1 else loss[:, None]

    heldout = heldout_rows(sample, heldout_fraction, seed)
    unique_samples = np.unique(sample)
    clean = (label == clean_label).astype(np.float32)
    if target != "posterior" and len(np.unique(clean[~heldout])) < 2:
        kind = "corrupted" if clean[~heldout].all() else "correctly labelled"
        raise ValueError(
            f"The records' training split holds no {kind} sample, so `target`={target!r} cannot weight the two "
            "alike: record a student on data with both right and wrong labels."
        )

    # One copy of every record per percentile, with its loss_diff against that percentile's reference.
    thresholds = np.percentile(loss, list(percentiles)).astype(np.float32)
    loss_t = torch.from_numpy(np.tile(history, (len(percentiles), 1)))
    if loss_diff_reference == "trainer":
        diffs = np.concatenate([_record_column(records, names, column, "float") for column in diff_columns])
        diff_t = torch.from_numpy(diffs.astype(np.float32))[:, None]
        served_epoch = (
            _record_column(records, names, "mentornet_epoch", "int")
            if "mentornet_epoch" in names
            else _served_epoch(epoch, model.config)
        )
    else:
        references = _percentile_references(loss, epoch, percentiles, loss_diff_reference)
        diff_t = loss_t - torch.from_numpy(references.reshape(-1))[:, None]
        served_epoch = epoch
    data = {
        "loss": loss_t,
        "loss_diff": diff_t,
        "epoch": torch.from_numpy(np.tile(served_epoch.astype(np.int64), len(percentiles))),
        "label": torch.zeros(len(loss_t), dtype=torch.long),
    }
    data = {key: value.to(model.device) for key, value in data.items()}  # a warm start may live on a GPU
    clean_t = torch.from_numpy(np.tile(clean, len(percentiles))).to(model.device)
    heldout_t = torch.from_numpy(np.tile(heldout, len(percentiles)))
    train_index, test_index = torch.nonzero(~heldout_t).squeeze(1), torch.nonzero(heldout_t).squeeze(1)
    # Per percentile copy: each copy's loss_diff has its own reference, so its own threshold or isotonic fit.
    per_copy = [
        _dd_targets(target, clean_t[rows], data["loss_diff"][rows, -1], torch.nonzero(~heldout_t[rows]).squeeze(1))
        for rows in torch.arange(len(clean_t), device=clean_t.device).chunk(len(percentiles))
    ]
    targets = torch.cat([copy_targets for copy_targets, _ in per_copy])
    weights = None if per_copy[0][1] is None else torch.cat([copy_weights for _, copy_weights in per_copy])
    train_logits, test_logits, optimisation = _fit_and_score(
        model,
        data,
        targets,
        train_index,
        test_index,
        "cross-entropy",
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        decay_steps=decay_steps,
        decay_rate=decay_rate,
        warmup_steps=warmup_steps,
        max_grad_norm=max_grad_norm,
        seed=seed,
        weights=weights,
    )
    test_clean = clean_t[test_index]
    test_weights = torch.sigmoid(test_logits)
    mean_weight_clean = _mean_where(test_weights, test_clean == 1)
    mean_weight_noisy = _mean_where(test_weights, test_clean == 0)
    metrics = {
        "objective": "sigmoid-cross-entropy",
        "target": target,
        "num_records": len(loss),
        "num_samples": len(unique_samples),
        "noise_rate": float(np.mean(label != clean_label)),
        "percentiles": [float(p) for p in percentiles],
        "loss_diff_reference": loss_diff_reference,
        "loss_percentiles": [round(float(t), 6) for t in thresholds],
        "heldout_fraction": heldout_fraction,
        "heldout_selection_quality": mean_weight_clean - mean_weight_noisy,
        "heldout_mean_weight_clean": mean_weight_clean,
        "heldout_mean_weight_noisy": mean_weight_noisy,
        "heldout_accuracy": ((test_logits > 0).float() == test_clean).float().mean().item(),
        "heldout_auroc": _auroc(test_clean.cpu().numpy(), test_logits.cpu().numpy()),
        "heldout_cross_entropy": F.binary_cross_entropy_with_logits(test_logits, test_clean).item(),
        "train_cross_entropy": F.binary_cross_entropy_with_logits(train_logits, clean_t[train_index]).item(),
        **optimisation,
        "warm_start": init_model is not None,
        "seconds": round(time.perf_counter() - start_time, 2),
    }
    model.config.curriculum_name = curriculum_name
    model.config.curriculum_kind = "data-driven"
    model.config.curriculum_params = {}
    # Keep what the caller said about the source (dataset, student) in `config.learned_from`, not a warm start's.
    model.config.learned_from = {**(config.learned_from if config is not None else {}), **metrics}
    logger.info(
        f"Learned a data-driven curriculum from {len(loss)} records: held-out selection quality "
        f"{metrics['heldout_selection_quality']:.3f} (weights {mean_weight_clean:.3f} right / {mean_weight_noisy:.3f} "
        f"wrong labels), AUROC {metrics['heldout_auroc']:.3f} in {metrics['seconds']} s."
    )
    return model, metrics


def heldout_rows(sample: np.ndarray, heldout_fraction: float, seed: int) -> np.ndarray:
    """Which records [`learn_from_records`] holds out (a boolean per record): `heldout_fraction` of the samples,
    drawn with `seed`, every record of a held-out sample."""
    unique_samples, sample_id = np.unique(sample, return_inverse=True)
    if len(unique_samples) < 2:
        raise ValueError(f"`records` covers {len(unique_samples)} sample; need several to hold some out.")
    num_heldout = min(len(unique_samples) - 1, max(1, round(heldout_fraction * len(unique_samples))))
    heldout_samples = np.zeros(len(unique_samples), dtype=bool)
    heldout_samples[np.random.default_rng(seed).permutation(len(unique_samples))[:num_heldout]] = True
    return heldout_samples[sample_id]


def _served_epoch(epoch: np.ndarray, config: MentorNetConfig) -> np.ndarray:
    """The epoch feature a trainer serves at training progress `epoch` with `config`'s settings: clamped at the
    burn-in epoch with `fixed_epoch_after_burn_in` (as `MentorNetTrainer._mentornet_epoch` with a burn-in fraction)."""
    if not config.fixed_epoch_after_burn_in:
        return epoch
    return np.minimum(epoch, math.floor(100 * config.burn_in_fraction + 1e-6))


def _dd_targets(
    target: str, clean: torch.Tensor, loss_diff: torch.Tensor, train_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The targets and per-record loss weights a DD learns from (see [`learn_from_records`]'s `target`); the
    balancing shares and the isotonic fit read the training rows only."""
    if target == "posterior":
        return clean, None
    train_clean = clean[train_index]
    if target == "threshold":
        return (loss_diff <= _separating_threshold(loss_diff[train_index], train_clean)).float(), None
    clean_share = train_clean.mean()
    weights = torch.where(clean == 1, 0.5 / clean_share, 0.5 / (1.0 - clean_share))
    if target == "balanced":
        return clean, weights
    isotonic = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(
        loss_diff[train_index].cpu().numpy(),
        train_clean.cpu().numpy(),
        sample_weight=weights[train_index].cpu().numpy(),
    )
    targets = torch.from_numpy(isotonic.predict(loss_diff.cpu().numpy()).astype(np.float32)).to(clean.device)
    return targets, None


def _separating_threshold(loss_diff: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The `loss_diff` t maximising P(loss_diff <= t | right label) - P(loss_diff <= t | wrong label)."""
    order = loss_diff.argsort()
    sorted_clean = clean[order]
    right = sorted_clean.cumsum(0) / sorted_clean.sum().clamp_min(1)
    wrong = (1 - sorted_clean).cumsum(0) / (1 - sorted_clean).sum().clamp_min(1)
    return loss_diff[order][(right - wrong).argmax()]


def _mean_where(values: torch.Tensor, mask: torch.Tensor) -> float:
    return values[mask].mean().item() if mask.any() else math.nan


def _auroc(targets: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ROC AUC, NaN when `targets` holds a single class (a split with no corrupted sample)."""
    return float(roc_auc_score(targets, scores)) if len(np.unique(targets)) == 2 else float("nan")


def _train_student_records(
    dataset: datasets.Dataset,
    student_factory: Callable[[], nn.Module],
    args: WeightedLossArguments,
    *,
    image_column: str = "image",
    label_column: str = "label",
    cifar_augmentation: bool = False,
    transform_kwargs: dict[str, Any] | None = None,
) -> datasets.Dataset:
    """Train `student_factory()` with plain training on `dataset` (noisy `label_column`, `clean_label`,
    `sample_index`: the output of [`inject_label_noise`]) and return its per-sample records (see
    [`WeightedLossTrainer.student_records`]), written under `args.output_dir`."""
    set_seed(args.seed)
    student = student_factory()
    transform = image_transforms(
        student, train=True, cifar_augmentation=cifar_augmentation, **(transform_kwargs or {})
    )
    trainer = WeightedLossTrainer(
        model=student,
        args=dataclasses.replace(args, record_student=True, eval_strategy="no"),
        train_dataset=with_image_transform(dataset, transform, image_column=image_column, label_column=label_column),
        data_collator=MentorNetCollator(),
    )
    trainer.train()
    return trainer.student_records()


def learn_data_driven_curriculum(
    dataset: datasets.Dataset,
    student_factory: Callable[[], nn.Module],
    args: WeightedLossArguments,
    *,
    noise_rates: Sequence[float] = (0.4,),
    noise_type: str = "uniform",
    noise_seed: int = 0,
    image_column: str = "image",
    label_column: str = "label",
    cifar_augmentation: bool = False,
    transform_kwargs: dict[str, Any] | None = None,
    config: MentorNetConfig | None = None,
    learning_kwargs: dict[str, Any] | None = None,
) -> tuple[MentorNetModel, dict[str, Any], datasets.Dataset]:
    """Learn a data-driven (DD) curriculum as the paper does (Sec. 3.1, 5.1): on a small dataset with known clean
    labels, inject label noise, train a student with plain training while recording every sample's loss
    (`_train_student_records`), and fit a MentorNet to tell the records of correctly labelled samples from the
    corrupted ones ([`learn_from_records`]).

    The paper learns one DD MentorNet per noise rate, at the rate of the data it will train on; with several
    `noise_rates` the records of one student per rate are pooled into one curriculum (softer: measured on MNIST with
    40% noise, pooling 0.2/0.4/0.8 gave corrupted samples weight 0.41 against 0.31 for the 0.4 curriculum).

    Args:
        dataset: the clean-labelled images (e.g. 5,000 CIFAR-10 training images), with image and label columns.
        student_factory: builds a fresh student.
        args: the student's training arguments (`output_dir` gets one sub-directory of records per noise rate).
        noise_rates, noise_type, noise_seed: the injected noise ([`inject_label_noise`]).
        config: the DD MentorNet's configuration (architecture and the training settings it recommends);
            defaults to the released DD command's settings (`fixed_epoch_after_burn_in`, its dropout schedule).
        learning_kwargs: passed to [`learn_from_records`].

    Returns:
        The MentorNet, the learning metrics, and the pooled records.
    """
    config = config or MentorNetConfig(fixed_epoch_after_burn_in=True, example_dropout_schedule=DD_DROPOUT_SCHEDULE)
    records = []
    for index, rate in enumerate(noise_rates):
        noisy = inject_label_noise(dataset, rate, noise_type, seed=noise_seed + index, label_column=label_column)
        student_records = _train_student_records(
            noisy,
            student_factory,
            dataclasses.replace(args, output_dir=os.path.join(args.output_dir, f"records-noise-{rate:g}")),
            image_column=image_column,
            label_column=label_column,
            cifar_augmentation=cifar_augmentation,
            transform_kwargs=transform_kwargs,
        )
        records.append(student_records.add_column("noise_rate", [float(rate)] * len(student_records)))
    pooled = datasets.concatenate_datasets(records)
    model, metrics = learn_from_records(pooled, config, **(learning_kwargs or {}))
    model.config.learned_from.update(
        {
            "noise_rates": list(noise_rates),
            "noise_type": noise_type,
            "dataset_size": len(dataset),
            "student_epochs": args.num_train_epochs,
        }
    )
    return model, metrics, pooled
