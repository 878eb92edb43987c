"""A deterministic embedder for tests: no model, yet it ranks texts by shared words.

Each lowercased word adds weight 1 to a bucket chosen by CRC-32 (stable across runs, unlike
Python's salted `hash`), and each of its character trigrams adds a little, so "engines" still
lands near "engine". Rows are L2-normalised, so inner product is cosine as with a real model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
_TRIGRAM_WEIGHT = 0.2


class FakeEmbedder:
    """Hashed bag of words and trigrams; counts its calls so tests can see caching work.

    Args:
        name: recorded in the index manifest; change it to test embedder mismatches.
        dim: number of hash buckets.
    """

    def __init__(self, name: str = "fake-hash", dim: int = 256) -> None:
        self.name = name
        self.dim = dim
        self.calls = 0  # calls to embed()
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, self._bucket("w:" + word)] += 1.0
                padded = f"#{word}#"
                for i in range(len(padded) - 2):
                    out[row, self._bucket("t:" + padded[i : i + 3])] += _TRIGRAM_WEIGHT
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _bucket(self, token: str) -> int:
        return zlib.crc32(token.encode("utf-8")) % self.dim
