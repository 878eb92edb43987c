"""Exporting an adapter: the bare adapter loads with PEFT, the merged model with plain transformers,
and both compute the same logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tune import AdapterMeta, AdapterVersion, ExportError, export_adapter, recorded_base_model


@pytest.fixture(scope="module")
def version(trained, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AdapterVersion:
    """The tiny trained adapter as a registry version would hold it (a copy, so tests cannot spoil it)."""
    _, adapter_dir, _ = trained
    path = tmp_path_factory.mktemp("registry") / "house" / "v1"
    shutil.copytree(adapter_dir, path)
    meta = {"name": "house", "version": 1, "base_model": str(tiny_model_dir), "examples": 16}
    (path / "meta.json").write_text(json.dumps(meta))
    return AdapterVersion("house", 1, path, AdapterMeta.read(meta))


@pytest.fixture(scope="module")
def exported(version: AdapterVersion, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("exports") / "house-v1"
    lines: list[str] = []
    result = export_adapter(version, out, base_model_dir=tiny_model_dir, progress=lines.append)
    return result, lines


def _logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("Question 3: when will my refund arrive?", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_export_writes_the_adapter_and_a_merged_model(exported, version: AdapterVersion) -> None:
    result, lines = exported
    assert result.adapter == "house@v1" and result.merged_dir == result.out_dir / "merged"
    assert {"adapter_config.json", "adapter_model.safetensors", "meta.json"} <= set(result.files)
    assert {"merged/config.json", "merged/model.safetensors", "merged/tokenizer.json", "merged/hybrid-export.json"} <= set(result.files)
    assert (result.out_dir / "adapter_model.safetensors").read_bytes() == (version.path / "adapter_model.safetensors").read_bytes()
    assert not (result.merged_dir / "adapter_config.json").exists()  # a plain model, not an adapter
    provenance = json.loads((result.merged_dir / "hybrid-export.json").read_text())
    assert provenance["adapter"] == "house@v1" and provenance["meta"]["examples"] == 16
    assert any("merging house@v1" in line for line in lines)
    assert not [p for p in result.out_dir.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_merged_logits_equal_the_peft_model_logits(exported, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(result.merged_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    base_logits = _logits(base, tokenizer)
    peft_model = PeftModel.from_pretrained(base, result.out_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(result.merged_dir).eval()
    assert not isinstance(merged, PeftModel)
    peft_logits, merged_logits = _logits(peft_model, tokenizer), _logits(merged, tokenizer)
    assert not torch.allclose(peft_logits, base_logits, atol=1e-3)  # the adapter changes the model...
    assert torch.allclose(merged_logits, peft_logits, atol=1e-4, rtol=1e-4)  # ...and the merge keeps that


def test_adapter_only_needs_no_base_model(version: AdapterVersion, tmp_path: Path) -> None:
    result = export_adapter(version, tmp_path / "bare", merged=False)
    assert result.merged_dir is None and result.base_model_dir is None
    assert result.files == ["adapter_config.json", "adapter_model.safetensors", "meta.json"]


def test_a_non_empty_target_needs_force_and_keeps_other_files(version: AdapterVersion, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty .*notes.txt.*--force"):
        export_adapter(version, out, merged=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "merged").mkdir()  # as an earlier export of another version left it
    (out / "merged" / "model.safetensors").write_text("stale")
    export_adapter(version, out, merged=False, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "adapter_config.json").is_file()
    assert not (out / "merged").exists()


def test_refuses_targets_that_would_overwrite_the_adapter(version: AdapterVersion, tmp_path: Path) -> None:
    for target in (version.path, version.path / "sub", version.path.parent):
        with pytest.raises(ExportError, match="the adapter house@v1 itself"):
            export_adapter(version, target, merged=False, force=True)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export_adapter(version, file, merged=False)
    with pytest.raises(ExportError, match="base model directory"):
        export_adapter(version, tmp_path / "merged-without-base")
    assert not (tmp_path / "merged-without-base").exists()


def test_recorded_base_model(version: AdapterVersion, tiny_model_dir: Path, tmp_path: Path) -> None:
    gone = {"base_model_dir": str(tmp_path / "gone"), "base_model": "SmolLM2-135M-Instruct"}
    assert recorded_base_model(AdapterVersion("a", 1, version.path, AdapterMeta.read(gone))) == "SmolLM2-135M-Instruct"
    kept = {"base_model_dir": str(tiny_model_dir), "base_model": "x"}
    assert recorded_base_model(AdapterVersion("a", 1, version.path, AdapterMeta.read(kept))) == str(tiny_model_dir)
    # No meta.json: PEFT's own record of the base model.
    peft_base = json.loads((version.path / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert peft_base and recorded_base_model(AdapterVersion("a", 0, version.path)) == peft_base
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "adapter_config.json").write_text("{}")
    with pytest.raises(ExportError, match="records no base model"):
        recorded_base_model(AdapterVersion("bare", 0, bare))
