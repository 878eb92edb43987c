"""The index directory: FAISS cache recovery, embedder checks, visibility across instances."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ingest import (
    Index,
    IndexMismatchError,
    IndexNotFoundError,
    IngestError,
    ingest_paths,
    read_manifest,
)
from tests.ingest.conftest import ENGINES
from tests.support.fake_embedder import FakeEmbedder
from tests.support.pdfs import make_pdf


def _top(index: Index, query: str) -> tuple[str, int]:
    hit = index.search(query, k=1)[0]
    return Path(hit.source).name, hit.page


def test_index_directory_layout_and_manifest(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    assert {p.name for p in index_dir.iterdir()} >= {
        "manifest.json", "store.sqlite", "vectors.faiss", "vectors.json"
    }  # fmt: skip
    manifest = read_manifest(index_dir)
    assert manifest["format"] == 1
    assert (manifest["embedder"], manifest["dim"]) == ("fake-hash", 256)
    assert (manifest["chunker"], manifest["chunk_size"], manifest["chunk_overlap"]) == ("structure", 800, 120)
    assert (manifest["documents"], manifest["chunks"]) == (3, 7)
    with sqlite3.connect(index_dir / "store.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        generation = json.loads(
            conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
        )
    assert json.loads((index_dir / "vectors.json").read_text())["generation"] == generation


def test_missing_faiss_file_is_rebuilt_on_open(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    (index_dir / "vectors.faiss").unlink()
    with Index.open(index_dir, embedder) as index:
        assert (index_dir / "vectors.faiss").is_file()
        assert _top(index, "turbine blade metal fatigue") == ("engines.pdf", 2)


def test_stale_faiss_file_is_rebuilt_on_open(corpus, index_dir, embedder, tmp_path):
    # Simulate a crash after the SQLite commit but before the FAISS write: put back the
    # FAISS file of the previous generation.
    ingest_paths([corpus], index_dir, embedder)
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("vectors.faiss", "vectors.json"):
        shutil.copy(index_dir / name, saved / name)
    make_pdf(corpus / "engines.pdf", [ENGINES[0], "Compressor stall from ice ingestion."])
    ingest_paths([corpus], index_dir, embedder)
    for name in ("vectors.faiss", "vectors.json"):
        shutil.copy(saved / name, index_dir / name)
    with Index.open(index_dir, embedder) as index:
        assert _top(index, "compressor stall ice ingestion") == ("engines.pdf", 2)
        texts = [h.text for h in index.search("turbine blade metal fatigue", k=10)]
        assert not any("fatigue" in t for t in texts)
    stamp = json.loads((index_dir / "vectors.json").read_text())
    assert stamp["generation"] == 2 and stamp["count"] == 6


def test_corrupt_faiss_file_is_rebuilt(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    (index_dir / "vectors.faiss").write_bytes(b"garbage")
    with Index.open(index_dir, embedder) as index:
        assert _top(index, "bird strike geese")[1] == 2


def test_open_index_sees_later_ingests(corpus, index_dir, embedder, tmp_path):
    ingest_paths([corpus / "engines.pdf"], index_dir, embedder)
    with Index.open(index_dir, embedder) as index:  # e.g. held by a running server
        assert len(index) == 3
        ingest_paths([corpus], index_dir, FakeEmbedder())
        assert len(index) == 7
        assert _top(index, "bird strike geese windshield")[1] == 2


def test_other_embedder_name_or_dim_is_refused_with_a_fix(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    with pytest.raises(IndexMismatchError) as info:
        Index.open(index_dir, FakeEmbedder(name="other-model"))
    message = str(info.value)
    assert "fake-hash" in message and "other-model" in message
    assert "--embedder fake-hash" in message and "--index" in message
    with pytest.raises(IndexMismatchError, match="dim 256"):
        ingest_paths([corpus], index_dir, FakeEmbedder(dim=128))


def test_missing_index_says_how_to_make_one(tmp_path, embedder):
    with pytest.raises(IndexNotFoundError, match="hybrid ingest PATH --index"):
        Index.open(tmp_path / "nowhere", embedder)
    with pytest.raises(IndexNotFoundError):
        read_manifest(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_empty_index_searches_to_nothing(index_dir, embedder):
    with Index.open(index_dir, embedder, create=True) as index:
        assert len(index) == 0
        assert index.search("anything") == []
        assert index.chunk("nope:p1:c0") is None
        with pytest.raises(IngestError, match="k must be at least 1"):
            index.search("anything", k=0)
    assert embedder.calls == 0


def test_k_larger_than_the_index_returns_every_chunk(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    with Index.open(index_dir, embedder) as index:
        hits = index.search("engine", k=100)
        assert len(hits) == 7 and len({h.chunk_id for h in hits}) == 7


def test_a_failing_run_changes_nothing(corpus, index_dir, embedder):
    ingest_paths([corpus / "engines.pdf"], index_dir, embedder)

    class Broken(FakeEmbedder):
        def embed(self, texts):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        ingest_paths([corpus], index_dir, Broken())
    with Index.open(index_dir, embedder) as index:
        assert len(index.documents()) == 1 and len(index) == 3


def test_mentions_matches_whole_words_case_insensitively(tmp_path) -> None:
    from ingest import Index, ingest_paths
    from tests.support.fake_embedder import FakeEmbedder
    from tests.support.pdfs import make_pdf

    make_pdf(tmp_path / "a.pdf", ["The metadata of Apple's R&D_budget report (100% complete)."])
    embedder = FakeEmbedder()
    ingest_paths([tmp_path / "a.pdf"], tmp_path / "idx", embedder)
    index = Index.open(tmp_path / "idx", embedder)
    assert index.mentions("apple") and index.mentions("R&D_budget") and index.mentions("100%")
    assert not index.mentions("Meta") and not index.mentions("Tesla") and not index.mentions("R_D")
