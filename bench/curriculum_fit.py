"""Reproduce the paper's Appendix D, Table 1: how well MentorNet architectures approximate predefined curricula.

For each curriculum of Table 1, fit on 80k points of the enumerated feature grid and report the MSE on the other 20k
(mean and 90% interval over seeds) for logistic regression, a 2-layer MLP and the MentorNet, beside the paper's
numbers, with the mean time per fit.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python bench/curriculum_fit.py --seeds 5

MentorNet variants (`--architectures`): `appendix-d` is the architecture of the paper's Table 1 (hidden size 10,
10 steps, batches of 512), `released` the released code's (hidden size 1, 1 step, batches of 2,048), which the
shipped curricula use. Prediction variance needs a loss history, so its row only has `appendix-d`. Both train the
epoch embedding (see `learn_predefined`). The MLP and logistic regression read the raw features
`[loss history, loss_diff history, epoch / 100, label]` and are trained with the same optimiser (3,000 steps of
2,048). The last column compares the best variant with the paper. Seconds per fit depend on the machine's load: the
machine is shared, so the variants are best run one at a time, e.g.

    ... bench/curriculum_fit.py --seeds 5 --architectures appendix-d --skip-baselines --curricula focal
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hf_mentornet import MentorNetConfig, MentorNetOutput, curriculum_weights, feature_grid
from hf_mentornet.learning import _fit, _logits, learn_predefined

# (curriculum, label in the paper, paper's bi-LSTM MSE, paper's MLP MSE)
TABLE_1 = [
    ("self-paced", "Self-paced", 1.6e-6, 1.1e-5),
    ("hard-example-mining", "Hard negative mining", 6.6e-7, 1.6e-5),
    ("spcl-linear", "Linear weighting", 4.4e-5, 1.2e-4),
    ("prediction-variance", "Prediction variance", 1.4e-3, 4.0e-3),
    ("focal", "Focal loss", 1.5e-5, 6.0e-5),
    ("temporal-mixture", "Temporal mixture", 1.2e-4, 1.9e-2),
]
# The 10-step LSTM costs ~10x more per sample, so appendix-d takes batches of 512 to stay under a minute per fit.
ARCHITECTURES = {
    "released": ({"hidden_size": 1, "num_steps": 1}, 2_048),
    "appendix-d": ({"hidden_size": 10, "num_steps": 10}, 512),
}


class FeatureBaseline(nn.Module):
    """Logistic regression (`hidden_size=0`) or a 2-layer tanh MLP on the raw MentorNet features, called like a
    MentorNet so that it trains with the same loop."""

    def __init__(self, num_steps: int, hidden_size: int) -> None:
        super().__init__()
        inputs = 2 * num_steps + 2
        self.net = (
            nn.Linear(inputs, 1)
            if hidden_size == 0
            else nn.Sequential(nn.Linear(inputs, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1))
        )

    def forward(self, loss, loss_diff, epoch, label) -> MentorNetOutput:
        features = torch.cat([loss, loss_diff, epoch[:, None] / 100.0, label[:, None].float()], dim=1)
        return MentorNetOutput(logits=self.net(features).squeeze(-1))


def fit_baseline(curriculum: str, hidden_size: int, num_steps: int, seed: int, max_steps: int, batch_size: int):
    """The same data, split and optimiser as `learn_predefined`, for a feature baseline. Returns the test MSE."""
    data = feature_grid(100_000, num_steps=num_steps, seed=seed)
    targets = curriculum_weights(curriculum, data["loss"], data["loss_diff"], data["epoch"], data["label"]).float()
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    train_index, test_index = order[:80_000], order[80_000:]
    torch.manual_seed(seed)
    model = FeatureBaseline(num_steps, hidden_size)
    train = {key: value[train_index] for key, value in data.items()}
    test = {key: value[test_index] for key, value in data.items()}
    _fit(model, train, targets[train_index], "mse", max_steps, batch_size, 0.1, None, 0.9, 100, 5.0, seed)
    return F.mse_loss(torch.sigmoid(_logits(model, test)), targets[test_index]).item()


def summary(values: list[float]) -> str:
    """Mean with the half-width of the 5th-95th percentile interval over seeds."""
    if not values:
        return "-"
    low, high = np.percentile(values, [5, 95])
    return f"{np.mean(values):.1e} ± {(high - low) / 2:.0e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--curricula", nargs="+", default=[row[0] for row in TABLE_1])
    parser.add_argument("--max-steps", type=int, default=3_000)
    parser.add_argument("--batch-size", type=int, default=2_048, help="for the logistic regression and the MLP")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-baselines", action="store_true", help="only fit the MentorNet variants")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    header = ["Curriculum", "Logistic (ours)", "MLP (ours)", "MLP (paper)"]
    header += [f"MentorNet {name} (ours)" for name in args.architectures]
    header += ["bi-LSTM (paper)", "MentorNet s/fit", "≤ paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for curriculum, label, paper_lstm, paper_mlp in TABLE_1:
        if curriculum not in args.curricula:
            continue
        num_steps = 10 if curriculum == "prediction-variance" else 1
        steps = dict(max_steps=args.max_steps, batch_size=args.batch_size)
        seeds = range(0 if args.skip_baselines else args.seeds)
        logistic = [fit_baseline(curriculum, 0, num_steps, seed, **steps) for seed in seeds]
        mlp = [fit_baseline(curriculum, 20, num_steps, seed, **steps) for seed in seeds]
        mentornet, seconds, best = [], [], float("inf")
        for name in args.architectures:
            if curriculum == "prediction-variance" and name == "released":
                mentornet.append("needs a history")
                continue
            architecture, batch_size = ARCHITECTURES[name]
            config = MentorNetConfig(trainable_epoch_embedding=True, **architecture)
            mses = []
            for seed in range(args.seeds):
                start = time.perf_counter()
                _, metrics = learn_predefined(
                    curriculum, config=config, seed=seed, max_steps=args.max_steps, batch_size=batch_size
                )
                seconds.append(time.perf_counter() - start)
                mses.append(metrics["test_mse"])
            mentornet.append(summary(mses))
            best = min(best, float(np.mean(mses)))
            print(f"{curriculum} {name}: {summary(mses)}", flush=True)
        row = [label, summary(logistic), summary(mlp), f"{paper_mlp:.1e}", *mentornet, f"{paper_lstm:.1e}"]
        row += [f"{np.mean(seconds):.1f}", "yes" if best <= paper_lstm else f"no (x{best / paper_lstm:.1f})"]
        lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
