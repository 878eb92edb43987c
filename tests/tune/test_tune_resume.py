"""Training that continues: from an existing adapter (retraining the active version), and after
an interruption from a checkpoint, ending with the adapter of an uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tune import AdapterNotFoundError, TuneConfig, load_model, read_examples, train_adapter
from tune.batching import encode_all
from tune.train import evaluate


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
