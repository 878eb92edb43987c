"""The FAISS side of an index: a search structure cached in `vectors.faiss`.

The structure follows the collection's size. Up to `EXACT_MAX` vectors it is an exact flat
scan; above, an IVF index (`ingest.ivf`) whose nprobe was calibrated to recall@10 >= 0.95
against exact search. Adding past `EXACT_MAX` turns an exact index into IVF; removing below
half of it turns IVF back into exact (the gap stops it flapping), and an IVF index that has
grown to 4x the vectors it was trained on is retrained. Scores are cosine in both cases.

`vectors.json` next to the file records the store generation the file was written for and how
it was built (kind, nlist, nprobe, measured recall). Writers replace `vectors.faiss` first and
`vectors.json` second, and readers read them in the opposite order, so a reader can only ever
see a generation that is too old, never one too new; too old means "rebuild from SQLite".

`load` memory-maps the file by default (faiss's `IO_FLAG_MMAP_IFC`): opening is instant, and
processes serving the same index share its pages instead of each holding a copy. FAISS cannot
change a mapped index (an add or remove on one crashes the process), so `add` and `remove`
first copy a mapped index into memory.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ingest import db, ivf
from ingest.ivf import IvfInfo

FAISS_FILE = "vectors.faiss"
STAMP_FILE = "vectors.json"

# Up to this many vectors, search is exact. Measured on one core (docs/how-to/scale.md), a
# flat scan of 50,000 x 384 float32 takes 3-4 ms, less than embedding the query; of 100,000,
# 10-15 ms. IVF answers in under 1 ms at any of these sizes, at recall@10 of about 0.97.
EXACT_MAX = 50_000
# IVF goes back to exact below this fraction of exact_max.
SHRINK_BELOW = 0.5
# IVF is retrained once it holds this many times the vectors it was trained on.
RETRAIN_GROWTH = 4
# Vectors per batch when copying a mapped exact index into memory.
_COPY_BATCH = 65_536


class VectorIndex:
    """Inner-product search over unit vectors (= cosine), keyed by `chunks.id`.

    Args:
        dim: vector size.
        index: a FAISS index to wrap (exact: `IndexIDMap2` over `IndexFlatIP`; approximate:
            `IndexIVFFlat`); an empty exact one by default.
        exact_max: the most vectors searched exactly; above it the index becomes IVF.
        ivf_info: how `index` was built, when it is IVF.
        mapped: `index` is memory-mapped from a file and must be copied before it changes.

    Raises:
        ValueError: exact_max is below 1, or an IVF index comes without its `ivf_info`.
    """

    def __init__(
        self,
        dim: int,
        index: faiss.Index | None = None,
        *,
        exact_max: int = EXACT_MAX,
        ivf_info: IvfInfo | None = None,
        mapped: bool = False,
    ) -> None:
        if exact_max < 1:
            raise ValueError(f"exact_max must be at least 1, got {exact_max}")
        self.dim = dim
        self.exact_max = exact_max
        self.index = index if index is not None else _exact(dim)
        if isinstance(self.index, faiss.IndexIVF) and ivf_info is None:
            raise ValueError("an IVF index needs the IvfInfo it was built with")
        self.ivf_info = ivf_info if isinstance(self.index, faiss.IndexIVF) else None
        self.mapped = mapped

    @classmethod
    def build(
        cls, ids: np.ndarray, vectors: np.ndarray, *, exact_max: int = EXACT_MAX
    ) -> VectorIndex:
        """The structure that fits len(ids) vectors: exact up to exact_max, else IVF.

        Args:
            ids: int64 row ids, one per vector.
            vectors: float32 (n, dim) unit vectors.
            exact_max: the most vectors searched exactly.

        Raises:
            ValueError: vectors is not (len(ids), dim), or exact_max is below 1.
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(
                f"expected {len(ids)} vectors in an (n, dim) array, got shape {vectors.shape}"
            )
        dim = vectors.shape[1]
        if len(ids) <= exact_max:
            made = cls(dim, exact_max=exact_max)
            made._add(ids, vectors)
            return made
        index, info = ivf.build(ids, vectors)
        return cls(dim, index, exact_max=exact_max, ivf_info=info)

    @property
    def kind(self) -> str:
        """The structure in use: "exact" or "ivf"."""
        return "exact" if self.ivf_info is None else "ivf"

    def describe(self) -> dict[str, Any]:
        """Kind and size, plus nlist, nprobe, recall_at_10 and trained_on for IVF."""
        described: dict[str, Any] = {"kind": self.kind, "count": len(self)}
        if self.ivf_info is not None:
            described.update(self.ivf_info.to_stamp())
        return described

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under row ids; may switch to IVF or retrain it (see the module doc)."""
        if len(ids):
            self._own()
            self._add(ids, vectors)
            self._refit()

    def remove(self, ids: np.ndarray) -> None:
        """Remove these row ids (unknown ones are ignored); may switch back to exact."""
        if len(ids):
            self._own()
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            self._refit()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest (row id, cosine) pairs, best first (fewer if IVF finds fewer)."""
        k = min(k, len(self))
        if k == 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        scores, ids = self.index.search(query, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    @classmethod
    def rebuild(
        cls, conn: sqlite3.Connection, dim: int, *, exact_max: int = EXACT_MAX
    ) -> VectorIndex:
        """Build from the vectors stored in SQLite (call inside a read transaction).

        Peak memory is about twice the vectors' size when the result is IVF: they are read
        into an exact index first, then copied out to train and fill the IVF one.
        """
        vectors = cls(dim, exact_max=exact_max)
        for ids, batch in db.iter_vectors(conn, dim):
            vectors._add(ids, batch)
        vectors._refit()
        return vectors

    @classmethod
    def load(
        cls,
        directory: Path,
        generation: int,
        count: int,
        dim: int,
        *,
        mmap: bool = True,
        exact_max: int = EXACT_MAX,
    ) -> VectorIndex | None:
        """The cached file if it was written for `generation`, else None.

        None also when the file is missing or unreadable, or when its structure no longer
        fits its size under `exact_max` (an exact index past it, say): the caller rebuilds.

        Args:
            mmap: map the file instead of reading it into memory (see the module doc).
        """
        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
        try:
            stamp = json.loads((directory / STAMP_FILE).read_text())
            index = faiss.read_index(str(directory / FAISS_FILE), flags)
        except (OSError, ValueError, RuntimeError):  # faiss reports a bad file as RuntimeError
            return None
        if stamp.get("generation") != generation or index.ntotal != count or index.d != dim:
            return None
        info = None
        if isinstance(index, faiss.IndexIVFFlat):
            info = IvfInfo.from_stamp(stamp)
            if info is None or info.nlist != index.nlist:
                return None
            index.nprobe = info.nprobe
        elif not isinstance(index, faiss.IndexIDMap2):
            return None
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            return None
        loaded = cls(dim, index, exact_max=exact_max, ivf_info=info, mapped=mmap)
        return loaded if loaded._fits() else None

    def save(self, directory: Path, generation: int) -> None:
        """Write the file and its stamp (generation, count and `describe()`), each atomically."""
        _replace(directory / FAISS_FILE, lambda tmp: faiss.write_index(self.index, tmp))
        stamp = json.dumps({"generation": generation, **self.describe()})
        _replace(directory / STAMP_FILE, lambda tmp: Path(tmp).write_text(stamp))

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.ascontiguousarray(ids, dtype=np.int64),
        )

    def _own(self) -> None:
        # A mapped index views the file's pages read-only, and faiss.clone_index would keep
        # the view: copy the data out instead.
        if self.mapped:
            self.index = ivf.in_memory(self.index) if self.ivf_info else _exact_copy(self.index)
            self.mapped = False

    def _fits(self) -> bool:
        n = len(self)
        if self.ivf_info is None:
            return n <= self.exact_max
        return SHRINK_BELOW * self.exact_max <= n <= RETRAIN_GROWTH * self.ivf_info.trained_on

    def _refit(self) -> None:
        if self._fits():
            return
        ids, vectors = self._contents()
        self.index = _exact(self.dim)  # drop the old structure before building the new one
        rebuilt = VectorIndex.build(ids, vectors, exact_max=self.exact_max)
        self.index, self.ivf_info = rebuilt.index, rebuilt.ivf_info

    def _contents(self) -> tuple[np.ndarray, np.ndarray]:
        if self.ivf_info is not None:
            return ivf.contents(self.index)
        flat = faiss.downcast_index(self.index.index)
        return faiss.vector_to_array(self.index.id_map), flat.reconstruct_n(0, len(self))


def _exact(dim: int) -> faiss.Index:
    # IDMap2 keeps ids with the vectors, so removals need no id bookkeeping of our own.
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _exact_copy(index: faiss.Index) -> faiss.Index:
    # Batch by batch, so the copy needs little memory beyond the new index itself.
    copy = _exact(index.d)
    flat = faiss.downcast_index(index.index)
    ids = faiss.vector_to_array(index.id_map)
    for start in range(0, len(ids), _COPY_BATCH):
        stop = min(start + _COPY_BATCH, len(ids))
        copy.add_with_ids(flat.reconstruct_n(start, stop - start), ids[start:stop])
    return copy


def _replace(target: Path, write) -> None:
    # Write beside the target, then rename: os.replace is atomic on one file system, so a
    # reader sees the old file or the new one, never half of one. A process that mapped the
    # old file keeps reading the old file's pages.
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
