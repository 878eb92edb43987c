"""Data-parallel training: two CPU processes launched by torchrun (gloo) train the adapter that one
process trains on the same examples, and only the first process writes files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.train_child import CONFIG, EVAL_EXAMPLES, write_examples
from tune import distributed, read_examples, train_adapter

ROOT = Path(__file__).resolve().parents[2]
_LAUNCH_TIMEOUT = 240  # seconds; two processes importing torch on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_helpers_are_the_identity_in_one_process() -> None:
    assert distributed.setup() == (0, 1) and distributed.is_main() and distributed.world() == 1
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(tensor) is tensor and tensor.tolist() == [1.0, 2.0]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    distributed.barrier()


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on POSIX")
def test_two_processes_train_the_adapter_of_one(tiny_model_dir, tmp_path) -> None:
    # 13 examples in batches of 4: the last batch of each epoch has one example, so the second
    # process has nothing to do in that step and joins the gradient sum with zeros.
    data = write_examples(tmp_path / "examples.jsonl", 13)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
            "-m", "tests.support.train_child", str(tiny_model_dir), str(data), str(tmp_path / "out-{rank}"),
            str(tmp_path / "ckpt-{rank}")]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=_LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = sorted((json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")),
                     key=lambda r: r["rank"])
    assert [r["rank"] for r in results] == [0, 1]
    assert results[0]["eval_loss"] == results[1]["eval_loss"] and results[0]["tokens"] == results[1]["tokens"]

    examples, _ = read_examples(data)
    single_dir = tmp_path / "single"
    single = train_adapter(examples, tiny_model_dir, single_dir, CONFIG, eval_examples=examples[:EVAL_EXAMPLES])
    # Only the first process wrote: the adapter, tokenizer, metrics and curve; its checkpoint is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples.jsonl", "out-0", "single"]
    assert sorted(p.name for p in (tmp_path / "out-0").iterdir()) == sorted(p.name for p in single_dir.iterdir())
    two = load_file(str(tmp_path / "out-0" / "adapter_model.safetensors"))
    one = load_file(str(single_dir / "adapter_model.safetensors"))
    assert two.keys() == one.keys()
    assert max(float((two[k] - one[k]).abs().max()) for k in one) < 1e-4
    metrics = json.loads((tmp_path / "out-0" / "metrics.json").read_text())
    assert [s["loss"] for s in metrics["steps"]] == pytest.approx(
        [s["loss"] for s in json.loads((single_dir / "metrics.json").read_text())["steps"]], rel=1e-4)
    assert results[0]["tokens"] == single.tokens and results[0]["steps"] == single.steps == 12
    assert results[0]["eval_loss"] == pytest.approx(single.eval_loss, rel=1e-4)
    assert results[0]["base_eval_loss"] == pytest.approx(single.base_eval_loss, rel=1e-6)


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on POSIX")
def test_hybrid_tune_runs_unchanged_under_torchrun(tiny_model_dir, tmp_path) -> None:
    data = write_examples(tmp_path / "examples.jsonl", 13)
    hybrid = Path(sys.executable).parent / "hybrid"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYBRID_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
            str(hybrid), "tune", str(data), "--base-model", str(tiny_model_dir), "--max-steps", "2",
            "--learning-rate", "0.01", "--json"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=_LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    payloads = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(payloads) == 1 and payloads[0]["adapter"] == "house@v1"  # one report, from rank 0
    versions = sorted(p.name for p in (tmp_path / "home" / "adapters" / "house").iterdir())
    assert versions == ["active.json", "v1"] and (tmp_path / "home" / "adapters" / "house" / "v1" / "meta.json").is_file()
