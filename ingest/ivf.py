"""The approximate structure behind `ingest.vectors` for large collections: an IVF index.

IVF (inverted file) runs k-means over the vectors, files each vector under its nearest of
`nlist` centroids, and scans only the `nprobe` cells nearest to a query. `IndexIVFFlat` keeps
the full float32 vectors in its cells, so the scores of the candidates it finds are exact inner
products (= cosine for unit vectors), and it supports `add_with_ids` and `remove_ids`, which
the patch-after-commit design of `ingest.store` needs (HNSW cannot remove).

`nprobe` is not guessed: `build` measures recall@10 against exact search on a sample of the
stored vectors and takes the smallest `nprobe` that reaches `RECALL_TARGET + RECALL_MARGIN`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

# nlist = 2·sqrt(n). Training cost grows with nlist² (k-means on a sample proportional to
# nlist), query cost with nlist + n·nprobe/nlist. For 100,000 vectors on one core, 4·sqrt(n)
# took 5.3 s to train against 1.4 s for 2·sqrt(n), and queries were under 0.1 ms faster.
NLIST_PER_SQRT = 2
# Vectors sampled per centroid for k-means; faiss asks for at least 39.
TRAIN_PER_LIST = 50
KMEANS_ITERATIONS = 10
RECALL_TARGET = 0.95
# Calibrating on 200 queries x 10 neighbours has a standard error of about 0.005; aiming
# 0.02 higher keeps the recall of unseen queries above RECALL_TARGET.
RECALL_MARGIN = 0.02
CALIBRATION_QUERIES = 200
K = 10
# Vectors added per add_with_ids call while building: bounds the temporary assignment arrays.
_ADD_BATCH = 65_536


@dataclass(frozen=True)
class IvfInfo:
    """How an IVF index was built; recorded in `vectors.json`.

    Attributes:
        nlist: number of cells (k-means centroids).
        nprobe: cells scanned per query.
        recall_at_10: recall@10 against exact search, measured with that nprobe when built.
        trained_on: vectors in the index when it was trained (a retrain is due at 4x that).
    """

    nlist: int
    nprobe: int
    recall_at_10: float
    trained_on: int

    def to_stamp(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_stamp(cls, stamp: dict[str, Any]) -> IvfInfo | None:
        """The info saved by `to_stamp`, or None if the stamp lacks it (an older file)."""
        try:
            return cls(
                nlist=int(stamp["nlist"]),
                nprobe=int(stamp["nprobe"]),
                recall_at_10=float(stamp["recall_at_10"]),
                trained_on=int(stamp["trained_on"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def nlist_for(n: int) -> int:
    """Cells for n vectors: 2·sqrt(n), but never fewer than 39 vectors per cell."""
    return max(1, min(round(NLIST_PER_SQRT * math.sqrt(n)), n // 39))


def build(ids: np.ndarray, vectors: np.ndarray, *, seed: int = 0) -> tuple[faiss.Index, IvfInfo]:
    """Train an IVF index on a sample of `vectors`, add them all and calibrate nprobe.

    Args:
        ids: int64 row ids, one per vector.
        vectors: float32 (n, dim) unit vectors.
        seed: for the training and calibration samples (the build is deterministic).

    Returns:
        The index, with nprobe set, and how it was built.
    """
    n, dim = vectors.shape
    nlist = nlist_for(n)
    rng = np.random.default_rng(seed)
    index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = KMEANS_ITERATIONS
    index.cp.min_points_per_centroid = 1  # nlist_for already keeps >= 39; silences a warning
    sample = _sample(rng, n, TRAIN_PER_LIST * nlist)
    index.train(vectors[sample])
    for start in range(0, n, _ADD_BATCH):
        stop = start + _ADD_BATCH
        index.add_with_ids(vectors[start:stop], ids[start:stop])
    nprobe, recall = calibrate(index, ids, vectors, rng)
    index.nprobe = nprobe
    return index, IvfInfo(nlist=nlist, nprobe=nprobe, recall_at_10=recall, trained_on=n)


def calibrate(
    index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, rng: np.random.Generator
) -> tuple[int, float]:
    """The smallest nprobe whose recall@10 on sampled stored vectors reaches the target.

    Each sampled vector is a query; its own id is left out of both the exact and the IVF
    neighbours, since finding itself would flatter the recall.

    Returns:
        (nprobe, measured recall at that nprobe).
    """
    queries = _sample(rng, len(ids), CALIBRATION_QUERIES)
    _, rows = faiss.knn(vectors[queries], vectors, K + 1, metric=faiss.METRIC_INNER_PRODUCT)
    rows = np.where(rows >= 0, ids[rows], -1)  # row numbers -> ids; -1 where n <= K
    truth = [_without(r, own) for r, own in zip(rows, ids[queries])]
    target = RECALL_TARGET + RECALL_MARGIN
    measured: dict[int, float] = {}

    def recall(nprobe: int) -> float:
        if nprobe not in measured:
            index.nprobe = nprobe
            _, found = index.search(vectors[queries], K + 1)
            got = [_without(f, own) for f, own in zip(found, ids[queries])]
            measured[nprobe] = recall_at_k(got, truth)
        return measured[nprobe]

    # Double until the target is met, then bisect between the last miss and the first hit.
    low, high = 0, 1
    while recall(high) < target and high < index.nlist:
        low, high = high, min(2 * high, index.nlist)
    while high - low > 1:
        middle = (low + high) // 2
        if recall(middle) >= target:
            high = middle
        else:
            low = middle
    return high, recall(high)


def recall_at_k(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean fraction of each true neighbour list that `found` contains (ids; -1 = none)."""
    hits = sum(len(np.intersect1d(f[f != -1], t)) for f, t in zip(found, truth))
    total = sum(len(t) for t in truth)
    return hits / total if total else 1.0


def contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """Every (id, vector) an IVF-Flat index holds, as int64 (n,) and float32 (n, dim) copies."""
    lists = index.invlists
    ids, vectors = [], []
    for cell in range(lists.nlist):
        size = lists.list_size(cell)
        if size:
            ids.append(faiss.rev_swig_ptr(lists.get_ids(cell), size).copy())
            codes = faiss.rev_swig_ptr(lists.get_codes(cell), size * lists.code_size)
            vectors.append(codes.view(np.float32).reshape(size, index.d).copy())
    if not ids:
        return np.empty(0, np.int64), np.empty((0, index.d), np.float32)
    return np.concatenate(ids), np.concatenate(vectors)


def in_memory(index: faiss.Index) -> faiss.Index:
    """A copy of an IVF-Flat index (centroids and cells) held in memory, e.g. of a mapped one."""
    copy = faiss.index_factory(index.d, f"IVF{index.nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    copy.quantizer.add(index.quantizer.reconstruct_n(0, index.nlist))
    copy.is_trained = True
    source = index.invlists
    for cell in range(index.nlist):
        size = source.list_size(cell)
        if size:
            copy.invlists.add_entries(cell, size, source.get_ids(cell), source.get_codes(cell))
    copy.ntotal = index.ntotal
    copy.nprobe = index.nprobe
    return copy


def _without(row: np.ndarray, own: int) -> np.ndarray:
    return row[(row != own) & (row != -1)][:K]


def _sample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return np.sort(rng.choice(n, size, replace=False)) if size < n else np.arange(n)
