"""Speculative greedy decoding on CPU: a small int8 draft proposes, the float32 model decides.

A decode step of a small model on two cores is bound by reading its weights: float32 costs
~20 ms a token for SmolLM2-135M whatever the kernel. An int8 copy (one scale per output row)
reads a quarter of the bytes, but its greedy choices drift from float32's within a few
tokens. So the int8 copy only *drafts*: it proposes ``draft_tokens`` tokens one at a time, and
the float32 model then scores all of them in one pass, reading its weights once for the whole
block. Drafts are kept up to the first one float32 greedy decoding would not have chosen, and
that position gets float32's own choice (the repetition penalty applied as the plain loop
applies it). The reply is therefore float32 greedy decoding's, token for token; only the
speed depends on how often the draft agrees (~9 tokens in 10 on SmolLM2-135M).

Both copies are compact Llama decoders, compiled ahead of time with AOTInductor in a
subprocess (`build_draft`, `build_check`; about a minute and 40 s on two cores); a server only
loads the packages (~2 s). The draft's weights are frozen into its package (prepacked, GEMMs
autotuned). The float32 check's package takes the weights as inputs instead, so it holds no
copy of them: the server passes the model's own tensors on every call, and one check package
serves every adapter of a base model. Its matrix products go through ``hybrid::small_linear``
(tune/kernels/products.cpp, compiled for the machine by `build_kernels`), which streams the
weights about twice as fast as MKL does for 9 rows. The prompt's prefill runs through the
transformers model itself, and its keys and values seed one float32 cache that draft and check
share; the check rewrites the draft's entries before anything reads them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tune import toolchain
from tune.decode import _cache_keyword, _new_cache, greedy_tokens, pick

DRAFT_TOKENS = 8  # measured with the eager check: 4 -> 55, 6 -> 59, 8 -> 62-64, 16 -> 65 tokens/s (64-token replies)
# AOTInductor options for the draft package: weights become constants (prepacked for the CPU
# GEMM kernels), each GEMM shape is benchmarked once against ATen's, and the constants are
# stored beside the shared library rather than inside it (inside, the runtime would hold them
# twice: the library's mapped data section and its own copy).
_PACKAGE_OPTIONS = {
    "freezing": True,
    "max_autotune": True,
    "max_autotune_gemm_backends": "CPP,ATEN",
    "aot_inductor.package_constants_in_so": False,
    "aot_inductor.package_constants_on_disk_format": "binary_blob",
}
# Bumped when the draft's graph or its inputs change, so stale packages are rebuilt.
PACKAGE_FORMAT = 3
# The check's matrix products (hybrid::small_linear), compiled for this machine by build_kernels.
KERNEL_SOURCE = Path(__file__).with_name("kernels") / "products.cpp"
KERNEL_FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
_LONGEST = 32768  # the most cache positions a package accepts


def unsupported(model: Any) -> str | None:
    """Why ``model`` cannot use the fast path, or None when it can.

    The compact decoder covers the Llama layout (SmolLM2, Llama 2/3, TinyLlama, ...): RMSNorm,
    rotary positions, grouped-query attention without biases, a SiLU-gated MLP.
    """
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} is not llama"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "projection biases are not supported"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} is not silu"
    if getattr(config, "head_dim", None) not in (None, config.hidden_size // config.num_attention_heads):
        return "a head size other than hidden_size / heads is not supported"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
        return "the model does not have the transformers Llama module layout"
    return None


class _Decoder(nn.Module):
    """A Llama decoder whose GEMMs run in ``dtype`` (norms, rotary, attention and the residual
    stream stay float32); it reads and writes a caller's cache. In float32 it uses the model's
    own weight tensors; in other dtypes it holds fused copies (q/k/v in one matrix, gate/up in
    another).

    ``kernels`` (float32 only) runs the matrix products through ``hybrid::small_linear``,
    which `load_kernels` must have registered.

    ``dtype`` torch.int8 stores each matrix as int8 with one bfloat16 scale per output row
    (symmetric, the row's largest magnitude maps to 127) and multiplies bfloat16 activations
    by it (``torch._weight_int8pack_mm``, which inductor turns into a CPU GEMM template).
    """

    def __init__(self, model: Any, dtype: torch.dtype, *, kernels: bool = False) -> None:
        super().__init__()
        config, inner = model.config, model.model
        # float32: matrix products through hybrid::small_linear (`build_kernels`).
        self.kernels = kernels and dtype == torch.float32
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.intermediate = config.intermediate_size
        self.eps = config.rms_norm_eps
        self.dtype = dtype

        def frozen(tensor: torch.Tensor, as_type: torch.dtype = torch.float32) -> nn.Parameter:
            return nn.Parameter(tensor.detach().to(as_type).contiguous(), requires_grad=False)

        def matrices(name: str, tensors: Any) -> None:
            # Buffers (export makes them the package's constants), in dtype or int8 + scales.
            for i, tensor in enumerate(tensors):
                tensor = tensor.detach()
                if dtype == torch.int8:
                    scale = tensor.abs().amax(1).clamp(min=1e-8) / 127
                    self.register_buffer(f"{name}_{i}", torch.round(tensor / scale[:, None]).clamp(-127, 127).to(torch.int8))
                    self.register_buffer(f"{name}_scale_{i}", scale.to(torch.bfloat16))
                else:
                    self.register_buffer(f"{name}_{i}", tensor.to(dtype).contiguous())

        layers = inner.layers
        self.layers = len(layers)
        self.norm1 = nn.ParameterList(frozen(layer.input_layernorm.weight) for layer in layers)
        self.norm2 = nn.ParameterList(frozen(layer.post_attention_layernorm.weight) for layer in layers)
        # A float32 copy uses the model's own tensors (no second copy of the weights); other
        # dtypes are copies anyway, fused so each layer makes four GEMM calls instead of seven.
        self.fused = dtype != torch.float32
        attention = [layer.self_attn for layer in layers]
        mlp = [layer.mlp for layer in layers]
        if self.fused:
            matrices("qkv", (torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]) for a in attention))
            matrices("gate_up", (torch.cat([m.gate_proj.weight, m.up_proj.weight]) for m in mlp))
        else:
            for name in ("q", "k", "v"):
                matrices(name, (getattr(a, f"{name}_proj").weight for a in attention))
            for name in ("gate", "up"):
                matrices(name, (getattr(m, f"{name}_proj").weight for m in mlp))
        matrices("out", (a.o_proj.weight for a in attention))
        matrices("down", (layer.mlp.down_proj.weight for layer in layers))
        matrices("lm_head", [model.lm_head.weight])
        self.final_norm = frozen(inner.norm.weight)
        # int8: the embedding table is int8 too (rows looked up and scaled), and a tied one is
        # the lm_head's own int8 matrix; in float32 a table would be 113 MB for SmolLM2-135M.
        self.tied = model.lm_head.weight.data_ptr() == inner.embed_tokens.weight.data_ptr()
        if dtype == torch.int8 and not self.tied:
            matrices("embed", [inner.embed_tokens.weight])
        elif dtype != torch.int8:
            self.embed = frozen(inner.embed_tokens.weight)

    def matrix(self, name: str, i: int) -> torch.Tensor:
        """Matrix ``name`` of layer ``i``: "qkv" (or "q", "k", "v"), "out", "gate_up" (or
        "gate", "up"), "down", "lm_head"."""
        return getattr(self, f"{name}_{i}")

    def _linear(self, x: torch.Tensor, name: str, i: int) -> torch.Tensor:
        if self.dtype == torch.int8:
            return torch._weight_int8pack_mm(x.to(torch.bfloat16), self.matrix(name, i), getattr(self, f"{name}_scale_{i}")).float()
        if self.kernels:
            return torch.ops.hybrid.small_linear(x, self.matrix(name, i))
        return F.linear(x.to(self.dtype), self.matrix(name, i)).float()

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        if self.dtype != torch.int8:
            return F.embedding(ids, self.embed)
        name = "lm_head" if self.tied else "embed"
        return self.matrix(name, 0)[ids].float() * getattr(self, f"{name}_scale_0")[ids].float()[:, None]

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor the forward pass reads, by name (a compiled check takes them as inputs)."""
        return {**dict(self.named_parameters()), **dict(self.named_buffers())}

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        span: torch.Tensor,
    ) -> torch.Tensor:
        """Logits (float32, [T, vocab]) for ``ids`` [T] at ``positions`` [T].

        ``cos``/``sin`` [T, head_dim] are the rotary tables at those positions; ``keys`` and
        ``values`` hold one [kv_heads, capacity, head_dim] float32 tensor per layer, written at
        ``positions``; attention covers cache positions below ``span``'s length.
        """
        count, end = ids.shape[0], span.shape[0]
        heads, kv_heads, head_dim = self.heads, self.kv_heads, self.head_dim
        group = heads // kv_heads
        visible = torch.arange(end, device=ids.device)[None, :] <= positions[:, None]  # [T, end]
        x = self._embed(ids)
        for i in range(self.layers):
            h = self._rms(x, self.norm1[i])
            if self.fused:
                q, k, v = self._linear(h, "qkv", i).split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], -1)
            else:
                q, k, v = (self._linear(h, name, i) for name in ("q", "k", "v"))
            q = _rotate(q.view(count, heads, head_dim).transpose(0, 1), cos, sin)
            k = _rotate(k.view(count, kv_heads, head_dim).transpose(0, 1), cos, sin)
            keys[i].index_copy_(1, positions, k)
            values[i].index_copy_(1, positions, v.view(count, kv_heads, head_dim).transpose(0, 1))
            # Query head j reads key/value head j // group, as transformers' repeat_kv does.
            # One query: broadcast products and sums, which inductor fuses into one loop;
            # several (the check): batched matrix products, faster for them.
            q = q.reshape(kv_heads, group * count, head_dim)
            if count == 1:
                scores = (q[:, :, None, :] * keys[i][:, None, :end, :]).sum(-1)
            else:
                scores = torch.bmm(q, keys[i][:, :end, :].transpose(1, 2))
            scores = (scores * head_dim**-0.5).view(kv_heads, group, count, end).masked_fill(~visible, float("-inf"))
            weights = torch.softmax(scores, -1).view(kv_heads, group * count, end)
            if count == 1:
                attended = (weights[..., None] * values[i][:, None, :end, :]).sum(-2)
            else:
                attended = torch.bmm(weights, values[i][:, :end, :])
            attended = attended.view(heads, count, head_dim).transpose(0, 1).reshape(count, heads * head_dim)
            x = x + self._linear(attended, "out", i)
            h = self._rms(x, self.norm2[i])
            if self.fused:
                gate, up = self._linear(h, "gate_up", i).split([self.intermediate, self.intermediate], -1)
            else:
                gate, up = self._linear(h, "gate", i), self._linear(h, "up", i)
            x = x + self._linear(F.silu(gate) * up, "down", i)
        return self._linear(self._rms(x, self.final_norm), "lm_head", 0)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, -1)
    return x * cos + torch.cat((-second, first), -1) * sin


class SpeculativeDecoder:
    """Greedy decoding of a transformers Llama model, sped up by an int8 draft.

    Args:
        model: the (merged) model in float32, eval mode; `unsupported` must return None.
        draft: the compiled draft, as `load_package` returns it; None runs the draft eagerly
            (the same tokens, slower than the plain loop: tests use it).
        check: the compiled check (`build_check`, for ``draft_tokens + 1`` positions), as
            `load_package` returns it; None runs the check eagerly.
        draft_tokens: tokens the draft proposes per check.
        draft_dtype: for the eager draft: torch.int8 (as packages are built) or
            torch.bfloat16 (agrees more often, ~98% of tokens, but reads twice the bytes).
    """

    def __init__(
        self,
        model: Any,
        *,
        draft: Any = None,
        check: Any = None,
        draft_tokens: int = DRAFT_TOKENS,
        draft_dtype: torch.dtype = torch.int8,
    ) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"no fast decoding for this model: {reason}")
        self.model = model
        self.draft_tokens = draft_tokens
        self.vocab_size = model.config.vocab_size
        # The check reads the model's own float32 tensors, eagerly or through a compiled check
        # that takes them as inputs, with hybrid::small_linear's products once `load_kernels`
        # has run (measured for 9 positions on 2 cores, in one run: eager 77 ms, compiled 56 ms,
        # compiled with the kernel 35 ms).
        self._check_step = _Decoder(model, torch.float32, kernels=kernels_loaded()).eval()
        if check is not None:
            weights = list(self._check_step.weights().values())
            self._check_step = lambda *inputs: check(*inputs, weights)
        if draft is None:
            with torch.no_grad():
                draft = _Decoder(model, draft_dtype).eval()
        self._draft_step = draft
        # Proposals made and kept, over the decoder's life: kept / made is the draft's agreement.
        self.proposed = self.kept = 0
        self._kv_heads = model.config.num_key_value_heads
        self._head_dim = model.config.hidden_size // model.config.num_attention_heads

    def tokens(
        self,
        input_ids: torch.Tensor,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int],
        repetition_penalty: float = 1.0,
    ) -> Iterator[tuple[int, float]]:
        """Yield ``(token, seconds)`` exactly as `tune.decode.greedy_tokens` does.

        Runs under plain ``no_grad`` whatever the caller's mode (the cache tensors it makes
        are then ordinary tensors, which the compiled draft may write to).
        """
        with torch.inference_mode(False), torch.no_grad():
            yield from self._tokens(input_ids, max_new_tokens, set(stop_ids), repetition_penalty)

    def _tokens(
        self, input_ids: torch.Tensor, max_new_tokens: int, stops: set[int], penalty: float
    ) -> Iterator[tuple[int, float]]:
        started = time.perf_counter()
        prompt = input_ids.shape[1]
        capacity = prompt + max_new_tokens + self.draft_tokens + 1
        if capacity > _LONGEST:  # beyond what a draft package accepts: the plain loop
            yield from greedy_tokens(self.model, input_ids, max_new_tokens=max_new_tokens, stop_ids=stops,
                                     repetition_penalty=penalty)
            return
        last, keys, values = self._prefill(input_ids, capacity)
        cos, sin = self._rotary(capacity)
        seen = torch.zeros(self.vocab_size, dtype=torch.bool)
        seen[input_ids[0]] = True
        # Tokens decided and not yet yielded; the last of them is not in the cache yet.
        pending = [pick(last, seen, penalty)]
        length, produced = prompt, 0  # cache positions below ``length`` hold checked keys/values
        while True:
            for token in pending:
                now = time.perf_counter()
                yield token, now - started
                started = time.perf_counter()
                produced += 1
                if token in stops or produced >= max_new_tokens:
                    return
                seen[token] = True
            # Draft: feed the last decided token, then each proposal, one position at a time.
            proposals, draft_seen, fed = [], seen.clone(), token
            for offset in range(self.draft_tokens):
                logits = self._run(self._draft_step, [fed], length + offset, cos, sin, keys, values)
                fed = pick(logits[0], draft_seen, penalty)
                draft_seen[fed] = True
                proposals.append(fed)
            # Check: that token and all proposals in one float32 pass. Proposals stand up to the
            # first the float32 choice differs from; that choice (or, all standing, the next
            # one) ends the block.
            logits = self._run(self._check_step, [token, *proposals], length, cos, sin, keys, values)
            decided, check_seen = [], seen.clone()
            for index, proposal in enumerate(proposals):
                decided.append(pick(logits[index], check_seen, penalty))
                if decided[-1] != proposal:
                    break
                check_seen[proposal] = True
            else:
                decided.append(pick(logits[len(proposals)], check_seen, penalty))
            self.proposed += len(proposals)
            self.kept += len(decided) - 1
            length += len(decided)  # the fed token and the proposals that stood
            pending = decided

    def _prefill(
        self, input_ids: torch.Tensor, capacity: int
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        # The prompt goes through transformers' own forward (any length, exactly its numbers):
        # the logits at its last position, and its keys and values to seed the shared cache.
        cache = _new_cache(self.model)
        output = self.model(input_ids=input_ids, **{_cache_keyword(self.model): cache}, use_cache=True, logits_to_keep=1)
        prompt = input_ids.shape[1]
        keys, values = [], []
        for layer in cache.layers:
            key = torch.zeros(self._kv_heads, capacity, self._head_dim)
            value = torch.zeros(self._kv_heads, capacity, self._head_dim)
            key[:, :prompt] = layer.keys[0]
            value[:, :prompt] = layer.values[0]
            keys.append(key)
            values.append(value)
        return output.logits[0, -1].float(), keys, values

    def _rotary(self, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(capacity)[None]
        cos, sin = self.model.model.rotary_emb(torch.zeros(1, dtype=torch.float32), positions)
        return cos[0], sin[0]

    def _run(
        self,
        step: Any,
        ids: list[int],
        start: int,
        cos: torch.Tensor,
        sin: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
    ) -> torch.Tensor:
        positions = torch.arange(start, start + len(ids))
        span = torch.empty(start + len(ids), dtype=torch.int8)  # its length is the attention span
        return step(torch.tensor(ids), positions, cos[positions], sin[positions], keys, values, span)


class _Package:
    """A loaded AOTInductor package, called like the eager module it was built from."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def __call__(self, *inputs: Any) -> torch.Tensor:
        out = self.runner(*inputs)
        return out[0] if isinstance(out, (list, tuple)) else out  # the logits


class _CheckGraph(nn.Module):
    """The float32 check with its weights as inputs: exported so, the compiled check holds no
    copy of them (the server passes the model's own tensors on every call), and one package
    serves every adapter of a base model."""

    def __init__(self, decoder: _Decoder) -> None:
        super().__init__()
        # Not a submodule: export would make the decoder's tensors the package's constants.
        object.__setattr__(self, "_decoder", decoder)
        self.names = list(decoder.weights())

    def forward(self, *inputs: Any) -> torch.Tensor:
        """`_Decoder.forward`'s inputs, then a list of its tensors in `_Decoder.weights` order."""
        *decoder_inputs, weights = inputs
        tensors = dict(zip(self.names, weights, strict=True))
        return torch.func.functional_call(self._decoder, tensors, tuple(decoder_inputs))


def build_draft(model: Any, path: Path) -> Path:
    """Compile ``model``'s int8 draft ahead of time into an AOTInductor package at ``path``.

    Takes about a minute on two cores and ~2 GB of memory; `tune.fastpath` runs it in
    a subprocess (``python -m tune.fastlm``) so a server never holds the compiler's memory.
    """
    with torch.no_grad():
        draft = _Decoder(model, torch.int8).eval()
        return _package(draft, _example(model, 1), (), path, _PACKAGE_OPTIONS)


def build_check(model: Any, path: Path, count: int = DRAFT_TOKENS + 1) -> Path:
    """Compile the float32 check of ``count`` positions (the fed token and the proposals) into
    an AOTInductor package at ``path``: its weights are inputs, kept out of the package, so
    matrix products run on the model's own tensors (through ``hybrid::small_linear`` when
    `load_kernels` has run, as `_main` does; a process loading the package must load the
    kernels first) and the compiler fuses the rest (norms, rotary, attention). About 40 s on
    two cores; `load_package` loads it and `SpeculativeDecoder` passes the weights."""
    with torch.no_grad():
        check = _CheckGraph(_Decoder(model, torch.float32, kernels=kernels_loaded()).eval())
        weights = [tensor.detach() for tensor in check._decoder.weights().values()]
        return _package(check, (*_example(model, count), weights), ([None] * len(weights),), path, {}, varargs=True)


def _example(model: Any, count: int) -> tuple:
    # Inputs of one decoder call at ``count`` positions after 10 cached ones, in a cache of 64.
    config = model.config
    layers, kv_heads = config.num_hidden_layers, config.num_key_value_heads
    head_dim = config.hidden_size // config.num_attention_heads
    keys = [torch.zeros(kv_heads, 64, head_dim) for _ in range(layers)]
    values = [torch.zeros(kv_heads, 64, head_dim) for _ in range(layers)]
    positions = torch.arange(10, 10 + count)
    return (positions - 5, positions, torch.ones(count, head_dim), torch.zeros(count, head_dim), keys, values,
            torch.empty(10 + count, dtype=torch.int8))


def _package(
    module: nn.Module, example: tuple, extra_shapes: tuple, path: Path, options: dict, *, varargs: bool = False
) -> Path:
    # ``varargs``: ``module.forward`` takes ``*inputs``, whose shapes export wants as one tuple.
    from torch.export import Dim, export

    layers = len(example[4])
    cache, span = Dim("capacity", min=4, max=_LONGEST), Dim("span", min=2, max=_LONGEST)
    shapes = (None, None, None, None, [{1: cache}] * layers, [{1: cache}] * layers, {0: span}, *extra_shapes)
    program = export(module, example, dynamic_shapes=(shapes,) if varargs else shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.pt2")  # builders may race
    torch._inductor.aoti_compile_and_package(program, package_path=str(partial), inductor_configs=options)
    partial.replace(path)  # a build killed half-way leaves no package that looks complete
    return path


def build_kernels(path: Path) -> Path:
    """Compile ``hybrid::small_linear`` (tune/kernels/products.cpp) for this machine into the
    shared library ``path``: about 10 s."""
    import subprocess

    from torch.utils.cpp_extension import include_paths, library_paths

    compiler = toolchain.compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++) to build the fast decoding kernel")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.so")
    command = [
        compiler, *KERNEL_FLAGS, f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        *(f"-I{folder}" for folder in include_paths()), str(KERNEL_SOURCE), "-o", str(partial),
        *(f"-L{folder}" for folder in library_paths()), "-lc10", "-ltorch_cpu",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"compiling {KERNEL_SOURCE.name} failed: {done.stderr.strip()[-2000:]}")
    partial.replace(path)
    return path


def kernels_loaded() -> bool:
    """Whether ``hybrid::small_linear`` is registered in this process."""
    try:
        torch.ops.hybrid.small_linear.default  # noqa: B018 - the lookup is the test
    except (AttributeError, RuntimeError):
        return False
    return True


def load_kernels(path: Path) -> None:
    """Register ``hybrid::small_linear`` from a `build_kernels` library (once per process: a
    second library of the same op is not loaded)."""
    if not kernels_loaded():
        torch.ops.load_library(str(path))


def load_package(path: Path) -> _Package:
    """A package from `build_draft` or `build_check`, ready for `SpeculativeDecoder`."""
    return _Package(torch._inductor.aoti_load_package(str(path)))


def package_name(model_dir: Path, adapter_dir: Path | None) -> str:
    """A file name for the draft package of this base model and adapter: it changes when their
    files, torch or the package format change."""
    return f"draft-{_digest(model_dir, adapter_dir)}.pt2"


def check_name(model_dir: Path, count: int = DRAFT_TOKENS + 1) -> str:
    """A file name for the check package of a base model, shared by all its adapters (the
    weights are not in it): it changes with the model's files, torch, the package format and
    the positions checked."""
    return f"check-{_digest(model_dir, None, f'count={count}')}.pt2"


def kernels_name() -> str:
    """A file name for the kernel library: it changes with its source, torch, the flags and the
    CPU (it is compiled for this one)."""
    cpu = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = "|".join(dict.fromkeys(line for line in lines if line.startswith(("model name", "flags"))))
    digest = hashlib.sha256(f"{torch.__version__}|{KERNEL_FLAGS}|{cpu}".encode() + KERNEL_SOURCE.read_bytes())
    return f"kernels-{digest.hexdigest()[:20]}.so"


def _digest(model_dir: Path, adapter_dir: Path | None, extra: str = "") -> str:
    digest = hashlib.sha256(f"{PACKAGE_FORMAT}|{torch.__version__}|{extra}".encode())
    for folder in (model_dir, adapter_dir):
        if folder is None:
            continue
        digest.update(str(Path(folder).resolve()).encode())
        for file in sorted(Path(folder).glob("*")):
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def release_free_memory() -> None:
    """Hand memory freed while loading and warming up back to the system (glibc keeps it otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _main(argv: list[str]) -> int:
    # python -m tune.fastlm MODEL_DIR ADAPTER_DIR|- DRAFT_OUT|- CHECK_OUT|- KERNELS: build the
    # packages named, and the kernel library if it is missing (tune.fastpath).
    from tune.models import load_model

    model_dir, adapter_dir, draft, check, kernels = argv
    torch.set_grad_enabled(False)
    if not Path(kernels).is_file():
        build_kernels(Path(kernels))
    load_kernels(Path(kernels))  # the check's graph calls them
    model, _ = load_model(model_dir, adapter_dir=None if adapter_dir == "-" else adapter_dir, merge=True)
    if draft != "-":
        build_draft(model, Path(draft))
    if check != "-":
        build_check(model, Path(check))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
