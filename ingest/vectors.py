"""The FAISS side of an index: an in-memory search structure cached in `vectors.faiss`.

`vectors.json` next to it records the store generation the file was written for. Writers
replace `vectors.faiss` first and `vectors.json` second, and readers read them in the opposite
order, so a reader can only ever see a generation that is too old, never one too new; too old
means "rebuild from SQLite".
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

import faiss
import numpy as np

from ingest import db

FAISS_FILE = "vectors.faiss"
STAMP_FILE = "vectors.json"


class VectorIndex:
    """Exact inner-product search over unit vectors (= cosine), keyed by `chunks.id`."""

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        # IDMap2 keeps ids with the vectors, so removals need no id bookkeeping of our own.
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest (row id, cosine) pairs, best first."""
        k = min(k, len(self))
        if k == 0:
            return []
        scores, ids = self.index.search(np.ascontiguousarray(vector.reshape(1, -1)), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    @classmethod
    def rebuild(cls, conn: sqlite3.Connection, dim: int) -> VectorIndex:
        """Build from the vectors stored in SQLite (call inside a read transaction)."""
        vectors = cls(dim)
        for ids, batch in db.iter_vectors(conn, dim):
            vectors.add(ids, batch)
        return vectors

    @classmethod
    def load(cls, directory: Path, generation: int, count: int, dim: int) -> VectorIndex | None:
        """The cached file if it was written for `generation`, else None (missing or stale)."""
        try:
            stamp = json.loads((directory / STAMP_FILE).read_text())
            index = faiss.read_index(str(directory / FAISS_FILE))
        except (OSError, ValueError, RuntimeError):  # faiss reports a bad file as RuntimeError
            return None
        if stamp.get("generation") != generation or index.ntotal != count or index.d != dim:
            return None
        return cls(dim, index)

    def save(self, directory: Path, generation: int) -> None:
        """Write the file and its generation stamp, each atomically."""
        _replace(directory / FAISS_FILE, lambda tmp: faiss.write_index(self.index, tmp))
        stamp = json.dumps({"generation": generation, "count": len(self)})
        _replace(directory / STAMP_FILE, lambda tmp: Path(tmp).write_text(stamp))


def _replace(target: Path, write) -> None:
    # Write beside the target, then rename: os.replace is atomic on one file system, so a
    # reader sees the old file or the new one, never half of one.
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
