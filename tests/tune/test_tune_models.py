"""Base model resolution (offline by default) and the real embedded default (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tune import DEFAULT_BASE_MODEL, Generator, ModelNotFoundError, resolve_base_model
from tune.models import MARKER_FILE


def test_a_model_directory_is_returned_as_is(tiny_model_dir, tmp_path) -> None:
    assert resolve_base_model(str(tiny_model_dir), tmp_path) == tiny_model_dir


def test_a_directory_without_a_model_is_refused(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_base_model(str(tmp_path), tmp_path)


def test_an_uncached_hub_id_fails_offline_with_advice(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="--allow-download"):
        resolve_base_model("nobody-here/no-such-model-xyz", tmp_path)


def test_nonsense_specs_are_refused(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="neither an existing directory"):
        resolve_base_model("./missing/dir", tmp_path)


@pytest.mark.slow
def test_the_embedded_default_converts_once_and_answers(smollm2_dir: Path) -> None:
    assert smollm2_dir.name == DEFAULT_BASE_MODEL
    marker = smollm2_dir / MARKER_FILE
    recorded = json.loads(marker.read_text())
    assert recorded["gguf"].endswith(".gguf") and recorded["size"] > 50_000_000
    assert (smollm2_dir / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    stamp = marker.stat().st_mtime_ns
    for spec in (None, "default", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        assert resolve_base_model(spec, smollm2_dir.parent) == smollm2_dir
    assert marker.stat().st_mtime_ns == stamp  # no reconversion
    assert [p.name for p in smollm2_dir.parent.iterdir()] == [DEFAULT_BASE_MODEL]  # no staging left over

    generator = Generator.load(smollm2_dir)
    assert generator.tokenizer.eos_token == generator.tokenizer.pad_token == "<|im_end|>"
    result = generator.generate([{"role": "user", "content": "Say hello."}], max_new_tokens=48)
    assert result.text and result.completion_tokens < 48
