"""Export an adapter version for use outside hybrid: the bare LoRA adapter and a merged model.

The export directory holds::

    adapter_config.json, adapter_model.safetensors, meta.json
        the adapter as PEFT wrote it: ``PeftModel.from_pretrained(base_model, DIR)``
    merged/   config.json, model.safetensors, tokenizer files, hybrid-export.json
        the base model with the adapter folded in:
        ``AutoModelForCausalLM.from_pretrained(DIR / "merged")``, no PEFT needed

For a serving engine (``engine``), no merged model, but what the engine loads and
``engine.json``, which names the base model and gives the command line that serves both:

    vllm        the PEFT adapter (``vllm serve BASE --enable-lora --lora-modules NAME@vN=DIR``)
    llama.cpp   adapter.gguf, a GGUF LoRA adapter (``llama-server -m BASE.gguf --lora ...``)
    ollama      adapter.gguf and a Modelfile (``FROM BASE.gguf``, ``ADAPTER``): ``ollama create``

Everything is written into a temporary sibling first and moved into place at the end, so a
failed export leaves the target as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from tune.errors import ExportError
from tune.gguf_lora import write_gguf_lora
from tune.models import MARKER_FILE, load_model
from tune.registry import ADAPTER_CONFIG, META_FILE, AdapterVersion

ADAPTER_WEIGHTS = "adapter_model.safetensors"
MERGED_DIR = "merged"
PROVENANCE_FILE = "hybrid-export.json"  # in merged/: which adapter and base model made it
GGUF_ADAPTER, MODELFILE, ENGINE_FILE = "adapter.gguf", "Modelfile", "engine.json"
ENGINES = ("vllm", "llama.cpp", "ollama")
# What an export may write in DIR.
_EXPORTED = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, META_FILE, MERGED_DIR, GGUF_ADAPTER, MODELFILE, ENGINE_FILE)
# Half-precision bases are saved back in their own dtype (the merge itself runs in float32).
_HALF = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ExportResult:
    """What `export_adapter` wrote.

    Attributes:
        adapter: the exported version's reference (``NAME@vN``, or its directory).
        out_dir: the export directory (the bare adapter is at its top level).
        merged_dir: ``out_dir/merged``, or None when only the adapter was exported.
        base_model_dir: the base model merged into, or None without a merged model.
        files: the files written, relative to ``out_dir``, sorted.
        seconds: wall time of the export.
        engine: the engine it was exported for, or None.
        command: the command line that serves it on that engine, or None.
    """

    adapter: str
    out_dir: Path
    merged_dir: Path | None
    base_model_dir: Path | None
    files: list[str]
    seconds: float
    engine: str | None = None
    command: str | None = None


def recorded_base_model(adapter: AdapterVersion) -> str:
    """The base model ``adapter`` was trained on, as its files record it.

    meta.json's ``base_model_dir`` while that directory exists, else its ``base_model`` spec
    (for `resolve_base_model`), else PEFT's ``base_model_name_or_path`` in adapter_config.json.

    Raises:
        ExportError: none of them is recorded (an adapter directory made outside hybrid).
    """
    recorded = adapter.meta.base_model_dir
    if recorded and Path(recorded).is_dir():
        return str(recorded)
    if adapter.meta.base_model:
        return str(adapter.meta.base_model)
    try:
        peft_base = json.loads((adapter.path / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        peft_base = None
    if peft_base:
        return str(peft_base)
    raise ExportError(
        f"{adapter.ref} records no base model (no meta.json base_model, no base_model_name_or_path in "
        f"{ADAPTER_CONFIG}); export it with --adapter-only, or merge it yourself"
    )


def export_adapter(
    adapter: AdapterVersion,
    out_dir: str | Path,
    *,
    base_model_dir: str | Path | None = None,
    merged: bool = True,
    force: bool = False,
    engine: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write ``adapter`` as a bare PEFT adapter and, with ``merged``, a merged full model.

    Args:
        adapter: the version to export (from `AdapterRegistry.resolve`).
        out_dir: the export directory; created if missing.
        base_model_dir: the resolved base model directory the adapter was trained on (see
            `recorded_base_model` and `resolve_base_model`); needed only with ``merged``.
        merged: also write ``out_dir/merged``, loadable by plain transformers.
        force: write into a non-empty ``out_dir``, replacing what an earlier export wrote there
            (``merged/`` included, even with ``merged=False``); other files stay.
        engine: one of ``ENGINES``: write what that engine loads instead of a merged model
            (``base_model_dir`` is then needed, to name the base model).
        progress: called with one human-readable line before slow steps.

    Raises:
        ExportError: ``out_dir`` is a file, not empty (without ``force``), inside the adapter's
            directory or above it; or ``merged`` without ``base_model_dir``.
        ModelNotFoundError: the base model directory is not a model.
        TuneError: the adapter does not fit the base model.
    """
    started = time.perf_counter()
    out = Path(out_dir).expanduser().resolve()
    _check_target(out, adapter, force)
    if engine is not None and engine not in ENGINES:
        raise ExportError(f"unknown engine {engine!r}; export for one of {', '.join(ENGINES)}")
    merged = merged and engine is None
    base = Path(base_model_dir) if (merged or engine) and base_model_dir is not None else None
    if (merged or engine) and base is None:
        raise ExportError(f"exporting {adapter.ref} {'for ' + engine if engine else 'merged'} needs its base model directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: that directory would be private (0700), and the export is an ordinary one.
    staging = out.parent / f".{out.name}-export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _write_adapter(adapter, staging)
        if merged and base is not None:
            if progress:
                progress(f"merging {adapter.ref} into the base model {base}; saving it as {out / MERGED_DIR}")
            _write_merged(adapter, base, staging / MERGED_DIR)
        command = _write_for_engine(adapter, base, staging, out, engine) if engine and base else None
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        adapter=adapter.ref,
        out_dir=out,
        merged_dir=out / MERGED_DIR if merged else None,
        base_model_dir=base,
        files=files,
        seconds=time.perf_counter() - started,
        engine=engine,
        command=command,
    )


def _write_for_engine(adapter: AdapterVersion, base: Path, staging: Path, out: Path, engine: str) -> str:
    """Write what ``engine`` loads into ``staging`` (moved to ``out`` later) and ``engine.json``;
    returns the command line that serves the adapter there."""
    name = adapter.ref if adapter.version else adapter.name
    try:
        base_gguf = json.loads((base / MARKER_FILE).read_text(encoding="utf-8")).get("gguf")
    except (OSError, ValueError):
        base_gguf = None  # a base model that did not come as GGUF
    gguf_base = base_gguf or f"<{base.name} converted to GGUF with llama.cpp's convert_hf_to_gguf.py>"
    if engine == "vllm":
        rank = json.loads((staging / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("r", 16)
        command = f"vllm serve {base} --enable-lora --max-lora-rank {max(8, int(rank))} --lora-modules {name}={out}"
    else:
        config = json.loads((base / "config.json").read_text(encoding="utf-8"))
        write_gguf_lora(staging, config, staging / GGUF_ADAPTER)
        command = f"llama-server -m {gguf_base} --lora {out / GGUF_ADAPTER} --parallel 4"
        if engine == "ollama":
            modelfile = f"FROM {gguf_base}\nADAPTER ./{GGUF_ADAPTER}\nPARAMETER temperature 0\nPARAMETER repeat_penalty 1.1\n"
            (staging / MODELFILE).write_text(modelfile, encoding="utf-8")
            name = name.replace("@", "-")  # Ollama's model names have no '@'
            command = f"ollama create {name} -f {out / MODELFILE}"
    record = {"engine": engine, "model": name, "base_model": str(base), "base_gguf": base_gguf, "command": command}
    (staging / ENGINE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return command


def _check_target(out: Path, adapter: AdapterVersion, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; pass a directory for the export")
    source = adapter.path.resolve()
    if out == source or source in out.parents or out in source.parents:
        raise ExportError(f"{out} holds or is inside the adapter {adapter.ref} itself; export to another directory")
    if out.is_dir() and not force and (entries := sorted(p.name for p in out.iterdir())):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ExportError(f"{out} is not empty (holds {shown}); pass an empty or new directory, or --force to overwrite")


def _write_adapter(adapter: AdapterVersion, target: Path) -> None:
    config = adapter.path / ADAPTER_CONFIG
    if not config.is_file():
        raise ExportError(f"{adapter.path} holds no trained adapter ({ADAPTER_CONFIG} missing)")
    # copyfile, not copy2: the export gets ordinary permissions, not the registry's.
    shutil.copyfile(config, target / ADAPTER_CONFIG)
    weights = adapter.path / ADAPTER_WEIGHTS
    if weights.is_file():
        shutil.copyfile(weights, target / ADAPTER_WEIGHTS)
    elif (legacy := adapter.path / "adapter_model.bin").is_file():
        # Older PEFT releases wrote pickles; the export is always safetensors.
        from safetensors.torch import save_file

        state = torch.load(legacy, map_location="cpu", weights_only=True)
        save_file({k: v.contiguous() for k, v in state.items()}, target / ADAPTER_WEIGHTS)
    else:
        raise ExportError(f"{adapter.path} has {ADAPTER_CONFIG} but no weights ({ADAPTER_WEIGHTS})")
    if adapter.meta.recorded:
        (target / META_FILE).write_text(json.dumps(adapter.meta.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")


def _write_merged(adapter: AdapterVersion, base_model_dir: Path, target: Path) -> None:
    # Merge in float32 whatever the base's dtype, so rounding happens once, at the end.
    model, tokenizer = load_model(base_model_dir, adapter_dir=adapter.path, merge=True, dtype=torch.float32)
    dtype = _saved_dtype(base_model_dir)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    provenance = {
        "adapter": adapter.ref,
        "adapter_path": str(adapter.path),
        "base_model": adapter.meta.base_model,
        "base_model_dir": str(base_model_dir),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "meta": adapter.meta.to_dict(),
    }
    (target / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, default=str) + "\n", encoding="utf-8")


def _saved_dtype(model_dir: Path) -> torch.dtype | None:
    """The half-precision dtype the base model is stored in, or None (keep float32)."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _HALF.get(str(config.get("dtype") or config.get("torch_dtype") or ""))


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    # An existing directory (--force): what an earlier export wrote goes, even what this one does
    # not write (a merged/ next to a different adapter would be a trap); the user's files stay.
    for name in _EXPORTED:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for entry in staging.iterdir():
        os.replace(entry, out / entry.name)
