"""Training that continues: from an existing adapter (retraining the active version), and after
an interruption from a checkpoint, ending with the adapter of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.train_child import CONFIG, EVAL_EXAMPLES, write_examples
from tune import AdapterNotFoundError, TuneConfig, TuneError, load_model, read_examples, train_adapter
from tune.batching import encode_all
from tune.train import evaluate

ROOT = Path(__file__).resolve().parents[2]
_MARKER_WAIT = 60  # seconds; generous for a loaded machine, reached only when a test is broken


def _weights(adapter_dir) -> dict[str, torch.Tensor]:
    return load_file(str(adapter_dir / "adapter_model.safetensors"))


@pytest.fixture
def examples(tmp_path, house_examples, write_jsonl):
    loaded, _ = read_examples(write_jsonl(tmp_path / "house.jsonl", house_examples(16)))
    return loaded


def test_training_from_an_adapter_starts_at_its_loss(trained, tiny_model_dir, tmp_path, examples) -> None:
    _, init, _ = trained
    model, tokenizer = load_model(tiny_model_dir, adapter_dir=init)
    held_out, _ = encode_all(tokenizer, examples[:4], 1024, "evaluation")
    init_loss = evaluate(model, held_out, 4096, tokenizer.pad_token_id)
    # One step at a learning rate too small to move the loss: what is measured is the start.
    config = TuneConfig(max_steps=1, learning_rate=1e-7, batch_size=4, dtype="float32")
    result = train_adapter(examples, tiny_model_dir, tmp_path / "a", config, eval_examples=examples[:4],
                           init_adapter=init)
    assert result.eval_loss == pytest.approx(init_loss, rel=1e-3)
    assert result.eval_loss < result.base_eval_loss * 0.5  # the base (adapter off) is far worse
    assert result.warnings == []  # the fixture's rank 8, alpha 16, all-linear: the config's too
    before, after = _weights(init), _weights(tmp_path / "a")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained on, not copied


def test_the_adapters_lora_settings_win_with_a_warning(trained, tiny_model_dir, tmp_path, examples) -> None:
    _, init, _ = trained
    config = TuneConfig(max_steps=1, rank=4, alpha=8, target_modules=["q_proj", "v_proj"], dtype="float32")
    result = train_adapter(examples, tiny_model_dir, tmp_path / "a", config, init_adapter=init)
    (warning,) = result.warnings
    assert "rank 8 (the config says 4)" in warning and "alpha 16 (the config says 8)" in warning
    assert "down_proj" in warning and str(init) in warning
    assert _weights(tmp_path / "a").keys() == _weights(init).keys()


def test_a_folder_without_an_adapter_is_refused(tiny_model_dir, tmp_path, examples) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterNotFoundError, match="adapter_config.json and adapter_model.safetensors missing"):
        train_adapter(examples, tiny_model_dir, tmp_path / "a", TuneConfig(max_steps=1),
                      init_adapter=tmp_path / "empty")


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> Path:
    """16 examples whose replies differ in length, so each batch (and its order) shows in the losses."""
    return write_examples(tmp_path_factory.mktemp("varied") / "varied.jsonl", 16)


@pytest.fixture(scope="module")
def uninterrupted(varied, tiny_model_dir, tmp_path_factory):
    """(adapter weights, metrics) of the child's training run, done in one go in this process."""
    out = tmp_path_factory.mktemp("uninterrupted")
    examples, _ = read_examples(varied)
    train_adapter(examples, tiny_model_dir, out, CONFIG, eval_examples=examples[:EVAL_EXAMPLES])
    return _weights(out), json.loads((out / "metrics.json").read_text())


def _resume_and_compare(varied, tiny_model_dir, out: Path, checkpoint: Path, uninterrupted, config=CONFIG, **kwargs):
    examples, _ = read_examples(varied)
    events: list[dict] = []
    result = train_adapter(examples, tiny_model_dir, out, config, eval_examples=examples[:EVAL_EXAMPLES],
                           progress=events.append, checkpoint_dir=checkpoint, **kwargs)
    weights, metrics = uninterrupted
    resumed = _weights(out)
    assert resumed.keys() == weights.keys()
    assert max(float((resumed[k] - weights[k]).abs().max()) for k in weights) <= 1e-5
    assert [s["loss"] for s in json.loads((out / "metrics.json").read_text())["steps"]] == pytest.approx(
        [s["loss"] for s in metrics["steps"]], rel=1e-5)
    assert result.steps == 12 and not checkpoint.exists()  # the finished run's checkpoint is gone
    return result, events


def _interrupt_after(step: int):
    def progress(info: dict) -> None:
        if info.get("step") == step:
            raise KeyboardInterrupt

    return progress


def _interrupted_run(varied, tiny_model_dir, tmp_path, step: int, **kwargs) -> Path:
    examples, _ = read_examples(varied)
    with pytest.raises(KeyboardInterrupt):
        train_adapter(examples, tiny_model_dir, tmp_path / "out", CONFIG, eval_examples=examples[:EVAL_EXAMPLES],
                      progress=_interrupt_after(step), checkpoint_dir=tmp_path / "ckpt", **kwargs)
    assert not (tmp_path / "out").exists()
    return tmp_path / "ckpt"


def test_a_run_checkpointed_every_step_resumes_mid_epoch(varied, tiny_model_dir, tmp_path, uninterrupted) -> None:
    checkpoint = _interrupted_run(varied, tiny_model_dir, tmp_path, 6, checkpoint_seconds=0)  # mid epoch 2
    assert sorted(p.name for p in checkpoint.iterdir()) == ["run.json", "state.pt"]
    result, events = _resume_and_compare(varied, tiny_model_dir, tmp_path / "out", checkpoint, uninterrupted)
    assert result.resumed_from == 6
    assert {"message": "resuming from step 6 of 12"} in events
    assert [e["step"] for e in events if "step" in e] == list(range(7, 13))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["epoch_eval_losses"] == pytest.approx(uninterrupted[1]["epoch_eval_losses"], rel=1e-5)
    assert metrics["base_eval_loss"] == uninterrupted[1]["base_eval_loss"]


def test_by_default_a_run_resumes_from_the_last_epoch_end(varied, tiny_model_dir, tmp_path, uninterrupted) -> None:
    checkpoint = _interrupted_run(varied, tiny_model_dir, tmp_path, 7)  # 120 s between checkpoints: none mid-epoch
    result, _ = _resume_and_compare(varied, tiny_model_dir, tmp_path / "out", checkpoint, uninterrupted)
    assert result.resumed_from == 4


def test_a_checkpoint_of_other_examples_or_settings_is_refused(varied, tiny_model_dir, tmp_path) -> None:
    checkpoint = _interrupted_run(varied, tiny_model_dir, tmp_path, 2, checkpoint_seconds=0)
    examples, _ = read_examples(varied)
    saved = (checkpoint / "state.pt").read_bytes()
    with pytest.raises(TuneError, match=r"the checkpoint in .*ckpt was made from different examples or settings "
                                        r"\(data_sha256 differ\)"):
        train_adapter(examples[:12], tiny_model_dir, tmp_path / "out", CONFIG, eval_examples=examples[:EVAL_EXAMPLES],
                      checkpoint_dir=checkpoint)
    with pytest.raises(TuneError, match=r"\(config differ\)"):
        train_adapter(examples, tiny_model_dir, tmp_path / "out", replace(CONFIG, learning_rate=1e-3),
                      eval_examples=examples[:EVAL_EXAMPLES], checkpoint_dir=checkpoint)
    assert (checkpoint / "state.pt").read_bytes() == saved and not (tmp_path / "out").exists()
    # Only how fast it runs changed: that is the same run, so it resumes.
    result = train_adapter(examples, tiny_model_dir, tmp_path / "out", replace(CONFIG, threads=1),
                           eval_examples=examples[:EVAL_EXAMPLES], checkpoint_dir=checkpoint)
    assert result.resumed_from == 2


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_training_process_killed_mid_run_resumes(varied, tiny_model_dir, tmp_path, uninterrupted) -> None:
    marker, checkpoint = tmp_path / "marker", tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "tests.support.train_child", str(tiny_model_dir), str(varied), str(tmp_path / "out"),
            str(checkpoint), "9", str(marker)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + _MARKER_WAIT
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the training child ended before step 9: {proc.communicate()[1].decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the training child never reached step 9")
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup code of ours runs
    proc.wait()
    assert proc.returncode == -9
    result, _ = _resume_and_compare(varied, tiny_model_dir, tmp_path / "out", checkpoint, uninterrupted)
    assert result.resumed_from == 9
