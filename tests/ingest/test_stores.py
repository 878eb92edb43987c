"""One contract, two stores: the embedded SQLite + FAISS index and PostgreSQL with pgvector.

Every test here runs on both (``location`` is an index directory, then a PostgreSQL URL of a real
server started for the session), through the same public functions: ingest by content hash,
updates, removals, pages, the three search modes, filters, the writer lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ingest import (
    IndexBusyError,
    IndexMismatchError,
    IndexNotFoundError,
    IngestConfig,
    SearchFilterError,
    ingest_paths,
    open_index,
    read_manifest,
    remove_documents,
)
from tests.ingest.conftest import ENGINES, SUMMER_NAME, TRAINING
from tests.support.fake_embedder import FakeEmbedder
from tests.support.pdfs import make_pdf


def _top(index, query: str, **options) -> tuple[str, int]:
    hit = index.search(query, k=1, **options)[0]
    return Path(hit.source).name, hit.page


def test_ingest_lists_documents_with_pages_and_chunks(corpus, location, embedder):
    report = ingest_paths([corpus], location, embedder)
    assert (report.files_added, report.files_failed, report.pages, report.chunks) == (3, [], 7, 7)
    manifest = read_manifest(location)
    assert (manifest["embedder"], manifest["dim"], manifest["documents"], manifest["chunks"]) == ("fake-hash", 256, 3, 7)
    assert (manifest["chunk_size"], manifest["chunk_overlap"]) == (800, 120)
    with open_index(location, embedder) as index:
        documents = index.documents()
        # Sorted by the full path, byte by byte: "Rapport" < "crew/" < "engines".
        assert [(Path(d["source"]).name, d["pages"], d["chunks"]) for d in documents] == [
            (SUMMER_NAME, 2, 2), ("training.PDF", 2, 2), ("engines.pdf", 3, 3)
        ]
        assert len(index) == 7
        assert all(len(d["sha256"]) == 64 for d in documents)


def test_unchanged_files_are_skipped_and_changed_ones_replaced(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    again = ingest_paths([corpus], location, embedder)
    assert (again.files_added, again.files_updated, again.files_unchanged) == (0, 0, 3)
    make_pdf(corpus / "engines.pdf", ["Hangar audit. The hydraulic jack 4417 was recertified."])
    changed = ingest_paths([corpus], location, embedder)
    assert (changed.files_added, changed.files_updated, changed.files_unchanged) == (0, 1, 2)
    with open_index(location, embedder) as index:
        assert len(index) == 5
        assert _top(index, "hydraulic jack 4417 recertified") == ("engines.pdf", 1)
        assert all("turbine" not in hit.text for hit in index.search("turbine blade metal fatigue", k=5))


def test_pruning_removes_deleted_files(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    (corpus / "engines.pdf").unlink()
    report = ingest_paths([corpus], location, embedder, prune=True)
    assert report.files_removed == 1
    with open_index(location, embedder) as index:
        assert "engines.pdf" not in {Path(d["source"]).name for d in index.documents()}


def test_each_search_mode_finds_the_page_that_answers(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        for mode in ("hybrid", "dense", "keyword"):
            assert _top(index, "turbine blade metal fatigue", mode=mode) == ("engines.pdf", 2), mode
            assert _top(index, "fuel pump filter clogged", mode=mode) == ("engines.pdf", 3), mode
        hit = index.search("geese windshield", k=1)[0]
        assert 0.0 < hit.score <= 1.0 and "geese" in hit.text
        assert index.chunk(hit.chunk_id).text == hit.text
        assert index.chunk("no-such-chunk") is None


def test_keyword_search_finds_an_exact_number(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        assert _top(index, "4,200", mode="keyword")[0] == "engines.pdf"
        assert index.search("zzqx unknownword", k=3, mode="keyword") == []


def test_source_and_page_filters(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        hits = index.search("training and operations", k=10, sources=["*training*"])
        assert hits and {Path(h.source).name for h in hits} == {"training.PDF"}
        hits = index.search("engine fuel logbook", k=10, sources=["engines.pdf"], pages=(2, 3))
        assert {h.page for h in hits} == {2, 3}
        for mode in ("dense", "keyword"):
            assert {h.page for h in index.search("fuel pump", k=10, pages=(3, 3), mode=mode)} <= {3}
        with pytest.raises(SearchFilterError, match="no indexed document matches"):
            index.search("anything", sources=["nothing-like-this*"])
        with pytest.raises(SearchFilterError):
            index.search("anything", pages=(3, 2))


def test_remove_documents_by_file_and_by_folder(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        assert [Path(s).name for s in remove_documents(index, [corpus / "engines.pdf"])] == ["engines.pdf"]
        assert [Path(s).name for s in remove_documents(index, [corpus / "crew"])] == ["training.PDF"]
        assert remove_documents(index, [corpus / "nothing.pdf"]) == []
        assert [Path(d["source"]).name for d in index.documents()] == [SUMMER_NAME]
        assert len(index) == 2


def test_mentions_are_whole_words_in_any_case(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        assert index.mentions("Turbine") and index.mentions("the")
        assert not index.mentions("turb") and not index.mentions("zeppelin")
        sources = [d["source"] for d in index.documents()]
        counts = {Path(s).name: n for s, n in index.mention_counts("the", sources).items()}
        assert counts["engines.pdf"] >= 4 and set(counts) == {Path(s).name for s in sources}


def test_an_index_refuses_another_embedder_and_a_missing_one_is_named(corpus, location, embedder):
    with pytest.raises(IndexNotFoundError, match="hybrid ingest"):
        open_index(location, embedder)
    with pytest.raises(IndexNotFoundError):
        read_manifest(location)
    ingest_paths([corpus], location, embedder)
    with pytest.raises(IndexMismatchError, match="fake-hash"):
        open_index(location, FakeEmbedder(dim=128))


def test_one_writer_at_a_time_and_readers_never_wait(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index, open_index(location, embedder) as other:
        config = IngestConfig()
        with index.writer(config) as writer:
            writer.remove(writer.sources()[0])
            with pytest.raises(IndexBusyError, match="being written by another ingest"):
                with other.writer(config):
                    pass
            # A reader in another thread sees the last commit, without waiting for the writer.
            seen: list[int] = []
            reader = threading.Thread(target=lambda: seen.append(len(other.documents())))
            reader.start()
            reader.join(timeout=10)
            assert seen == [3]
        assert len(other.documents()) == 2  # committed: the other index object sees it


def test_an_ingest_through_one_index_object_is_seen_by_another(corpus, location, embedder, tmp_path):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as serving:
        assert len(serving.documents()) == 3
        make_pdf(tmp_path / "more" / "hangar.pdf", ["Hangar audit. The hydraulic jack 4417 was recertified."])
        ingest_paths([tmp_path / "more"], location, embedder)
        assert len(serving.documents()) == 4
        assert _top(serving, "hydraulic jack 4417") == ("hangar.pdf", 1)


def test_a_failed_run_changes_nothing(corpus, location, embedder):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        with pytest.raises(RuntimeError, match="stop"), index.writer(IngestConfig()) as writer:
            writer.remove(writer.sources()[0])
            raise RuntimeError("stop")
        assert len(index.documents()) == 3 and len(index) == 7


def test_the_stores_rank_alike(corpus, tmp_path, postgres_url, embedder):
    ingest_paths([corpus], tmp_path / "index", embedder)
    ingest_paths([corpus], postgres_url, embedder)
    with open_index(tmp_path / "index", embedder) as embedded, open_index(postgres_url, embedder) as postgres:
        for query in ("turbine blade metal fatigue", "geese windshield", "night flying hours", "fuel pump"):
            # Dense: the same vectors, so the same passages with the same scores.
            ours = [(h.chunk_id, round(h.score, 4)) for h in postgres.search(query, k=3, mode="dense")]
            theirs = [(h.chunk_id, round(h.score, 4)) for h in embedded.search(query, k=3, mode="dense")]
            assert ours == theirs, query
            # Fused with keywords (BM25 there, ts_rank_cd here): the same best passage.
            assert postgres.search(query, k=1)[0].chunk_id == embedded.search(query, k=1)[0].chunk_id, query


def test_training_pages_keep_their_numbers(tmp_path, location, embedder):
    make_pdf(tmp_path / "docs" / "training.pdf", TRAINING + ENGINES)
    ingest_paths([tmp_path / "docs"], location, embedder)
    with open_index(location, embedder) as index:
        assert _top(index, "fuel pump filter clogged") == ("training.pdf", 5)


def test_messages_never_show_a_password() -> None:
    from ingest import describe, is_postgres

    assert describe("postgresql://team:s3cret@db.internal:6432/hybrid?sslmode=require") == (
        "postgresql://team:***@db.internal:6432/hybrid?sslmode=require"
    )
    assert describe("postgres://db/hybrid?sslmode=require&password=s3cret") == "postgres://db/hybrid?sslmode=require&password=***"
    assert describe(Path("some/index")) == "some/index"
    assert is_postgres(" PostgreSQL://db/x") and not is_postgres("mysql://db/x") and not is_postgres(Path("postgresql:"))
