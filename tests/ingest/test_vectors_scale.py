"""The FAISS structure follows the collection's size: exact, then IVF, and memory-mapped loading.

The threshold is lowered through `exact_max` so that a few thousand vectors exercise IVF in
about a second. The vectors are a seeded Gaussian mixture, so IVF has clusters to find.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from ingest import ivf
from ingest.vectors import FAISS_FILE, STAMP_FILE, VectorIndex

DIM = 48
EXACT_MAX = 1000


def clustered(n: int, seed: int, clusters: int = 40, spread: float = 0.5) -> np.ndarray:
    """Unit vectors around fixed cluster centres; `seed` picks the points, not the centres."""
    centres = np.random.default_rng(99).standard_normal((clusters, DIM)) / np.sqrt(DIM)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, DIM)) * spread / np.sqrt(DIM)
    points = centres[rng.integers(clusters, size=n)] + noise
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def row_ids(n: int, first: int = 0) -> np.ndarray:
    return (np.arange(first, first + n, dtype=np.int64) * 7) + 3  # sparse, like chunks.id


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int = 10) -> list[int]:
    return [int(i) for i in ids[np.argsort(-(vectors @ query), kind="stable")[:k]]]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return row_ids(3000), clustered(3000, seed=1)


@pytest.fixture(scope="module")
def built(data) -> VectorIndex:
    return VectorIndex.build(*data, exact_max=EXACT_MAX)


def test_exact_up_to_the_threshold_and_ivf_above(data):
    ids, vectors = data
    at = VectorIndex.build(ids[:EXACT_MAX], vectors[:EXACT_MAX], exact_max=EXACT_MAX)
    assert at.kind == "exact"
    above = VectorIndex.build(ids[: EXACT_MAX + 1], vectors[: EXACT_MAX + 1], exact_max=EXACT_MAX)
    assert above.kind == "ivf" and isinstance(above.index, faiss.IndexIVFFlat)
    described = above.describe()
    assert described["count"] == EXACT_MAX + 1
    assert described["nlist"] == ivf.nlist_for(EXACT_MAX + 1) > 1
    assert 1 <= described["nprobe"] <= described["nlist"] and described["recall_at_10"] >= 0.95
    assert VectorIndex.build(ids, vectors).kind == "exact"  # the default threshold is 50,000


def test_ivf_recall_at_10_against_exact_on_unseen_queries(data, built):
    ids, vectors = data
    queries = clustered(200, seed=2)
    assert built.kind == "ivf" and built.ivf_info.nprobe < built.ivf_info.nlist
    truth = [np.array(exact_top(ids, vectors, q)) for q in queries]
    found = [np.array([i for i, _ in built.search(q, 10)]) for q in queries]
    assert ivf.recall_at_k(found, truth) >= 0.95
    # The data is hard enough for the calibration to matter: one cell per query falls short.
    built.index.nprobe = 1
    try:
        one_cell = [built.index.search(q.reshape(1, -1), 10)[1][0] for q in queries]
    finally:
        built.index.nprobe = built.ivf_info.nprobe
    assert ivf.recall_at_k(one_cell, truth) < 0.95


def test_ivf_scores_are_cosine_best_first(data, built):
    ids, vectors = data
    by_id = dict(zip(ids.tolist(), vectors))
    query = clustered(1, seed=3)[0]
    hits = built.search(query, 10)
    assert len(hits) == 10
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    for row, score in hits:
        assert score == pytest.approx(float(by_id[row] @ query), abs=1e-5)


def test_add_and_remove_on_ivf(data):
    ids, vectors = data
    index = VectorIndex.build(ids, vectors, exact_max=EXACT_MAX)
    gone = ids[::6]
    index.remove(gone)
    assert len(index) == len(ids) - len(gone) and index.kind == "ivf"
    returned = {row for v in vectors[::6][:100] for row, _ in index.search(v, 10)}
    assert returned and not returned & set(gone.tolist())
    new_ids, new_vectors = row_ids(50, first=10_000), clustered(50, seed=4)
    index.add(new_ids, new_vectors)
    assert len(index) == len(ids) - len(gone) + 50
    for row, vector in zip(new_ids[:10], new_vectors[:10]):
        top_row, top_score = index.search(vector, 1)[0]
        assert top_row == row and top_score == pytest.approx(1.0, abs=1e-5)


def test_the_structure_switches_as_the_collection_grows_and_shrinks(data):
    ids, vectors = data
    index = VectorIndex(DIM, exact_max=EXACT_MAX)
    index.add(ids[:800], vectors[:800])
    assert index.kind == "exact"
    index.add(ids[800:1200], vectors[800:1200])
    assert index.kind == "ivf" and index.ivf_info.trained_on == 1200
    index.remove(ids[:600])  # 600 left: above half the threshold, IVF stays
    assert index.kind == "ivf" and len(index) == 600
    index.remove(ids[600:800])  # 400 left: back to exact, with every vector kept
    assert index.kind == "exact" and len(index) == 400
    assert exact_top(ids[800:1200], vectors[800:1200], vectors[1000]) == [
        row for row, _ in index.search(vectors[1000], 10)
    ]
    index.add(ids[1200:2400], vectors[1200:2400])
    assert index.kind == "ivf"
    index.remove(ids)  # all of them: an empty exact index
    assert index.kind == "exact" and len(index) == 0 and index.search(vectors[0], 10) == []


def test_ivf_is_retrained_after_growing_fourfold(data):
    ids, vectors = data
    index = VectorIndex.build(ids[:1200], vectors[:1200], exact_max=EXACT_MAX)
    first = index.ivf_info
    more_ids, more_vectors = row_ids(3800, first=10_000), clustered(3800, seed=5)
    index.add(more_ids[:3600], more_vectors[:3600])  # 4,800 = 4 x 1,200: no retrain yet
    assert index.ivf_info == first
    index.add(more_ids[3600:], more_vectors[3600:])
    assert index.ivf_info.trained_on == 5000 and index.ivf_info.nlist == ivf.nlist_for(5000)
    assert index.search(more_vectors[-1], 1)[0][0] == more_ids[-1]


@pytest.mark.parametrize("kind_max", [EXACT_MAX, 10_000], ids=["ivf", "exact"])
@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "read"])
def test_save_and_load_round_trip(data, tmp_path, kind_max, mmap):
    ids, vectors = data
    saved = VectorIndex.build(ids, vectors, exact_max=kind_max)
    saved.save(tmp_path, generation=7)
    stamp = json.loads((tmp_path / STAMP_FILE).read_text())
    assert stamp == {"generation": 7, **saved.describe()}
    loaded = VectorIndex.load(tmp_path, 7, len(ids), DIM, mmap=mmap, exact_max=kind_max)
    assert loaded is not None and loaded.mapped is mmap
    assert (loaded.kind, loaded.ivf_info) == (saved.kind, saved.ivf_info)
    queries = clustered(20, seed=6)
    assert [loaded.search(q, 10) for q in queries] == [saved.search(q, 10) for q in queries]
    # Patching a mapped index copies it into memory first; the file is left as it was.
    on_disk = (tmp_path / FAISS_FILE).read_bytes()
    loaded.remove(ids[:5])
    loaded.add(row_ids(1, first=50_000), queries[:1])
    assert not loaded.mapped and len(loaded) == len(ids) - 4
    assert loaded.search(queries[0], 1)[0][0] == row_ids(1, first=50_000)[0]
    assert not {row for row, _ in loaded.search(vectors[0], 10)} & set(ids[:5].tolist())
    assert (tmp_path / FAISS_FILE).read_bytes() == on_disk


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("mmap", [True, False])
def test_mmap_loading_maps_the_file(data, tmp_path, mmap):
    VectorIndex.build(*data, exact_max=EXACT_MAX).save(tmp_path, generation=1)
    loaded = VectorIndex.load(tmp_path, 1, len(data[0]), DIM, mmap=mmap, exact_max=EXACT_MAX)
    maps = Path("/proc/self/maps").read_text()
    assert (str(tmp_path / FAISS_FILE) in maps) is mmap
    loaded.add(row_ids(1, first=60_000), clustered(1, seed=7))  # copies, then unmaps
    del maps
    assert str(tmp_path / FAISS_FILE) not in Path("/proc/self/maps").read_text()


def test_load_returns_none_when_stale_or_mismatched(data, tmp_path):
    ids, vectors = data
    VectorIndex.build(ids, vectors, exact_max=EXACT_MAX).save(tmp_path, generation=3)

    def load(generation=3, count=len(ids), dim=DIM, exact_max=EXACT_MAX):
        return VectorIndex.load(tmp_path, generation, count, dim, exact_max=exact_max)

    assert load() is not None
    assert load(generation=2) is None  # written for another generation
    assert load(count=len(ids) - 1) is None
    assert load(dim=DIM + 1) is None
    assert load(exact_max=10_000) is None  # IVF for 3,000 vectors when 10,000 are searched exactly
    assert load(exact_max=6_000) is not None  # 3,000 is half of 6,000: IVF may stay
    stamp = json.loads((tmp_path / STAMP_FILE).read_text())
    del stamp["nprobe"]
    (tmp_path / STAMP_FILE).write_text(json.dumps(stamp))
    assert load() is None  # an IVF file without its build record

    VectorIndex.build(ids, vectors, exact_max=10_000).save(tmp_path, generation=4)
    assert load(generation=4, exact_max=10_000) is not None
    assert load(generation=4, exact_max=2_000) is None  # exact past the threshold: rebuild
    (tmp_path / STAMP_FILE).unlink()
    assert load(generation=4, exact_max=10_000) is None


def test_bad_arguments_are_refused(data):
    with pytest.raises(ValueError, match="exact_max must be at least 1, got 0"):
        VectorIndex(DIM, exact_max=0)
    with pytest.raises(ValueError, match=r"expected 3 vectors .* got shape \(2, 48\)"):
        VectorIndex.build(data[0][:3], data[1][:2])
