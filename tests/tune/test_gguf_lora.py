"""Export for serving engines: a GGUF LoRA adapter llama.cpp can read, a Modelfile, engine.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.tune.test_tune_export import version  # noqa: F401 - the fixture
from tune import AdapterVersion, ExportError, export_adapter
from tune.gguf_lora import rope_rows, write_gguf_lora


def _fields(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {}
    for name in ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"):
        field = reader.fields[name]
        value = field.parts[field.data[0]]
        fields[name] = bytes(value).decode() if field.types[0] == gguf.GGUFValueType.STRING else float(value[0])
    return fields, {t.name: np.asarray(t.data) for t in reader.tensors}


def test_rope_rows_interleave_each_heads_two_halves() -> None:
    rows = np.arange(8).reshape(8, 1)  # two heads of four rows: HF pairs (0, 2), (1, 3)
    assert rope_rows(rows, heads=2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_llama_cpp_export_writes_a_gguf_lora_adapter(version: AdapterVersion, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    result = export_adapter(version, tmp_path / "out", base_model_dir=tiny_model_dir, engine="llama.cpp")
    assert result.merged_dir is None and {"adapter.gguf", "engine.json", "adapter_config.json"} <= set(result.files)
    assert "merged/config.json" not in result.files
    assert result.command.startswith("llama-server -m <") and f"--lora {result.out_dir / 'adapter.gguf'}" in result.command
    fields, tensors = _fields(result.out_dir / "adapter.gguf")
    peft = json.loads((version.path / "adapter_config.json").read_text())
    assert fields == {"general.architecture": "llama", "general.type": "adapter", "adapter.type": "lora",
                      "adapter.lora.alpha": float(peft["lora_alpha"])}
    weights = load_file(str(version.path / "adapter_model.safetensors"))
    assert len(tensors) == len(weights)
    heads = json.loads((tiny_model_dir / "config.json").read_text())["num_attention_heads"]
    q_a = next(v for k, v in weights.items() if "layers.0.self_attn.q_proj.lora_A" in k)
    q_b = next(v for k, v in weights.items() if "layers.0.self_attn.q_proj.lora_B" in k)
    v_b = next(v for k, v in weights.items() if "layers.0.self_attn.v_proj.lora_B" in k)
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_a"], q_a.astype(np.float32))
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_b"], rope_rows(q_b.astype(np.float32), heads))
    assert np.array_equal(tensors["blk.0.attn_v.weight.lora_b"], v_b.astype(np.float32))  # not a rotary projection
    record = json.loads((result.out_dir / "engine.json").read_text())
    assert record["engine"] == "llama.cpp" and record["model"] == "house@v1" and record["base_gguf"] is None


def test_ollama_and_vllm_exports(version: AdapterVersion, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    ollama = export_adapter(version, tmp_path / "ollama", base_model_dir=tiny_model_dir, engine="ollama")
    modelfile = (ollama.out_dir / "Modelfile").read_text()
    assert "\nADAPTER ./adapter.gguf\n" in modelfile and modelfile.startswith("FROM ")
    assert ollama.command == f"ollama create house-v1 -f {ollama.out_dir / 'Modelfile'}"
    vllm = export_adapter(version, tmp_path / "vllm", base_model_dir=tiny_model_dir, engine="vllm")
    assert "adapter.gguf" not in vllm.files and "adapter_model.safetensors" in vllm.files
    assert vllm.command.startswith(f"vllm serve {tiny_model_dir} --enable-lora --max-lora-rank ")
    assert vllm.command.endswith(f" --lora-modules house@v1={vllm.out_dir}")


def test_an_unknown_engine_or_architecture_is_a_clear_error(version: AdapterVersion, tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ExportError, match="unknown engine 'tgi'"):
        export_adapter(version, tmp_path / "a", base_model_dir=tiny_model_dir, engine="tgi")
    with pytest.raises(ExportError, match="GPT2LMHeadModel"):
        write_gguf_lora(version.path, {"architectures": ["GPT2LMHeadModel"]}, tmp_path / "x.gguf")
