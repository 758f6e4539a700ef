"""Two CPU processes with batch b weight samples exactly as one process with batch 2b."""

import os
import subprocess
import sys

import pytest
import torch

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def run(command, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("loss_normalization", "per_class"), [("batch_size", "0"), ("weight_sum", "0"), ("batch_size", "1")]
)
def test_two_processes_match_one_process_with_the_global_batch(tmp_path, loss_normalization, per_class):
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            WORKER,
            str(tmp_path / "two" / "out.pt"),
            "8",
            loss_normalization,
            per_class,
        ],
        tmp_path,
    )
    run([sys.executable, WORKER, str(tmp_path / "one" / "out.pt"), "16", loss_normalization, per_class], tmp_path)
    two = torch.load(tmp_path / "two" / "out.pt")
    one = torch.load(tmp_path / "one" / "out.pt")
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert torch.equal(two["sample_index"], one["sample_index"])
    assert torch.allclose(two["loss"], one["loss"], atol=1e-6)
    assert torch.allclose(two["weight"], one["weight"], atol=1e-6)
    assert (two["weight"] == 0).sum() == (one["weight"] == 0).sum() == 3 * 8  # dropout 0.5 on the global batch
    assert torch.allclose(two["loss_moving_average"], one["loss_moving_average"], atol=1e-6)
    assert torch.allclose(two["params"], one["params"], atol=1e-6)
    print("max |weight difference|:", (two["weight"] - one["weight"]).abs().max().item())
    print("max |param difference|:", (two["params"] - one["params"]).abs().max().item())
