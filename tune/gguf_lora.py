"""A PEFT LoRA adapter as a GGUF LoRA adapter: what llama.cpp (``--lora``) and Ollama (``ADAPTER``) load.

Why our own writer: llama.cpp's converter (``convert_lora_to_gguf.py``) is a script of its
source tree that no wheel ships, and it wants the base model's Hugging Face files beside a
checkout. The format is small, and the ``gguf`` package (llama.cpp's own reader and writer,
on PyPI) writes it:

- metadata: ``general.architecture`` (the base model's, e.g. ``llama``), ``general.type`` =
  ``adapter``, ``adapter.type`` = ``lora``, ``adapter.lora.alpha``;
- per adapted linear layer, PEFT's A (r x in) and B (out x r) as
  ``blk.N.<tensor>.weight.lora_a`` and ``.lora_b``, in float32;
- llama.cpp keeps the query and key projections of Llama-family models with their rows
  permuted for its rotary embedding (each head's two halves interleaved); B's rows, which are
  the output rows of B @ A, take the same permutation, A is unchanged.

llama.cpp scales an adapter by alpha / r, as PEFT does (rsLoRA's alpha / sqrt(r) is written as
an alpha that gives the same scale), so the engine applies the adapter hybrid trained.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from tune.errors import ExportError

# Hugging Face architecture -> (llama.cpp's architecture, whether q and k rows are permuted).
ARCHITECTURES = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
}
# PEFT's module path inside a layer -> llama.cpp's tensor name.
_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])\.weight$")


def write_gguf_lora(adapter_dir: Path, base_config: dict, out: Path) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as the GGUF LoRA adapter ``out``.

    Args:
        adapter_dir: holds ``adapter_config.json`` and ``adapter_model.safetensors``.
        base_config: the base model's ``config.json`` (architecture and head counts).

    Raises:
        ExportError: an architecture, PEFT option or layer that llama.cpp's LoRA format cannot hold.
    """
    import gguf
    from safetensors.numpy import load_file

    architecture = (base_config.get("architectures") or ["?"])[0]
    if architecture not in ARCHITECTURES:
        raise ExportError(
            f"a GGUF adapter needs a base model of {', '.join(ARCHITECTURES)}; this one is {architecture}. "
            "Export the PEFT adapter (--for vllm) or convert it with llama.cpp's convert_lora_to_gguf.py"
        )
    arch, permuted = ARCHITECTURES[architecture]
    peft = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if peft.get("use_dora"):
        raise ExportError("a DoRA adapter has no GGUF form; train without use_dora")
    rank, alpha = int(peft["r"]), float(peft["lora_alpha"])
    if peft.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)  # llama.cpp scales by alpha / r
    heads = int(base_config["num_attention_heads"])
    kv_heads = int(base_config.get("num_key_value_heads") or heads)

    rotary = {"self_attn.q_proj": heads, "self_attn.k_proj": kv_heads} if permuted else {}
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
        match = _KEY.search(key)
        if match is None or match.group(2) not in _TENSORS:
            raise ExportError(f"{key}: llama.cpp's LoRA format has no place for this layer")
        layer, module, side = match.groups()
        weight = tensor.astype(np.float32)
        if side == "B" and module in rotary:
            weight = rope_rows(weight, rotary[module])
        pairs.setdefault(f"blk.{layer}.{_TENSORS[module]}.weight", {})[side] = weight

    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name in sorted(pairs, key=_layer_order):
        pair = pairs[name]
        if set(pair) != {"A", "B"}:
            raise ExportError(f"{name}: the adapter has lora_{''.join(pair)} without its partner")
        writer.add_tensor(f"{name}.lora_a", pair["A"])
        writer.add_tensor(f"{name}.lora_b", pair["B"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """``weight``'s rows in llama.cpp's order: within each head, the first and second halves of
    Hugging Face's rotary layout interleaved (row i of half 0, row i of half 1, ...)."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _layer_order(name: str) -> tuple[int, str]:
    return int(name.split(".")[1]), name


__all__ = ["ARCHITECTURES", "rope_rows", "write_gguf_lora"]
