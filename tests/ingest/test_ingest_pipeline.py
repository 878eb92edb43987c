"""ingest_paths end to end with the fake embedder: retrieval, incremental runs, pruning."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import Index, IngestConfig, ingest_paths
from tests.ingest.conftest import ENGINES, SUMMER_NAME
from tests.support.pdfs import make_pdf

QUERIES = [  # query, file name, page
    ("turbine blade metal fatigue crack", "engines.pdf", 2),
    ("fuel pump filter clogged", "engines.pdf", 3),
    ("bird strike geese windshield", SUMMER_NAME, 2),
    ("heatwave gliders runway asphalt", SUMMER_NAME, 1),
    ("night flying instrument approaches", "training.PDF", 2),
    ("simulator stall recovery", "training.PDF", 1),
]


def _top(index: Index, query: str) -> tuple[str, int]:
    hit = index.search(query, k=3)[0]
    return Path(hit.source).name, hit.page


def test_ingest_then_search_finds_the_right_file_and_page(corpus, index_dir, embedder):
    lines: list[str] = []
    report = ingest_paths([corpus], index_dir, embedder, progress=lines.append)
    assert (report.files_added, report.files_failed, report.pages) == (3, [], 7)
    assert report.chunks == 7  # every page is shorter than one chunk
    assert any(line.startswith("[1/3] added") and "pages" in line for line in lines)
    with Index.open(index_dir, embedder) as index:
        assert len(index) == 7
        for query, name, page in QUERIES:
            assert _top(index, query) == (name, page), query
        hits = index.search("turbine blade metal fatigue", k=3)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].source == str((corpus / "engines.pdf").resolve())
        assert index.chunk(hits[0].chunk_id).text == hits[0].text
        assert index.manifest["embedder"] == "fake-hash" and index.manifest["documents"] == 3
        assert {Path(d["source"]).name for d in index.documents()} == {
            "engines.pdf", SUMMER_NAME, "training.PDF"
        }  # fmt: skip


def test_rerun_is_unchanged_and_embeds_nothing(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    generation = (index_dir / "vectors.json").read_text()
    embedder.calls = 0
    report = ingest_paths([corpus], index_dir, embedder)
    assert (report.files_unchanged, report.files_added, report.files_updated) == (3, 0, 0)
    assert (report.pages, report.chunks, embedder.calls) == (0, 0, 0)
    assert (index_dir / "vectors.json").read_text() == generation  # nothing rewritten


def test_changed_file_is_reingested_and_old_chunks_are_gone(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    with Index.open(index_dir, embedder) as index:
        old_id = index.search("turbine blade metal fatigue")[0].chunk_id
    make_pdf(corpus / "engines.pdf", [ENGINES[0], "Compressor stall from ice ingestion."])
    report = ingest_paths([corpus], index_dir, embedder)
    assert (report.files_updated, report.files_unchanged, report.pages) == (1, 2, 2)
    with Index.open(index_dir, embedder) as index:
        assert index.chunk(old_id) is None
        assert len(index) == 6
        texts = [h.text for h in index.search("turbine blade metal fatigue", k=10)]
        assert not any("fatigue" in t for t in texts)
        assert _top(index, "compressor stall ice ingestion") == ("engines.pdf", 2)


def test_prune_removes_documents_whose_file_is_gone(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    (corpus / "crew" / "sub" / "training.PDF").unlink()
    assert ingest_paths([corpus], index_dir, embedder).files_removed == 0
    report = ingest_paths([corpus], index_dir, embedder, prune=True)
    assert (report.files_removed, report.files_unchanged) == (1, 2)
    with Index.open(index_dir, embedder) as index:
        assert len(index.documents()) == 2
        assert all("training" not in h.source for h in index.search("night flying", k=10))


def test_identical_files_are_stored_once(corpus, index_dir, embedder):
    shutil.copy(corpus / "engines.pdf", corpus / "engines copy.pdf")
    report = ingest_paths([corpus], index_dir, embedder)
    assert (report.files_added, report.files_unchanged) == (3, 1)
    assert any("same content" in w for w in report.warnings)
    with Index.open(index_dir, embedder) as index:
        assert len(index.documents()) == 3


def test_moved_file_is_indexed_under_its_new_path(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    (corpus / "engines.pdf").rename(corpus / "engines-2024.pdf")
    report = ingest_paths([corpus], index_dir, embedder)
    assert report.files_added == 1 and report.files_failed == []
    with Index.open(index_dir, embedder) as index:
        names = {Path(d["source"]).name for d in index.documents()}
        assert "engines-2024.pdf" in names and "engines.pdf" not in names
        assert _top(index, "turbine blade metal fatigue") == ("engines-2024.pdf", 2)


def test_small_batches_keep_vectors_in_order(corpus, index_dir, embedder):
    config = IngestConfig(chunk_size=60, chunk_overlap=10, batch_size=2)
    report = ingest_paths([corpus], index_dir, embedder, config)
    assert report.chunks > 7
    assert embedder.calls == pytest.approx(report.chunks / 2, abs=2)
    with Index.open(index_dir, embedder) as index:
        hit = index.search("geese windshield", k=1)[0]
        assert (Path(hit.source).name, hit.page) == (SUMMER_NAME, 2)
        assert "geese" in hit.text


def test_new_chunk_settings_are_recorded_with_a_warning(corpus, index_dir, embedder):
    ingest_paths([corpus / "engines.pdf"], index_dir, embedder)
    config = IngestConfig(chunk_size=400, chunk_overlap=40)
    report = ingest_paths([corpus], index_dir, embedder, config)
    assert report.files_added == 2
    assert any("1 document(s)" in w and "old chunking" in w for w in report.warnings)
    with Index.open(index_dir, embedder) as index:
        assert (index.manifest["chunk_size"], index.manifest["chunk_overlap"]) == (400, 40)


def test_nothing_to_ingest_creates_no_index(tmp_path, index_dir, embedder):
    report = ingest_paths([tmp_path / "nope.pdf"], index_dir, embedder)
    assert report.files_failed[0].error == "no such file or directory"
    assert "no PDF files" in report.warnings[0]
    assert not index_dir.exists()


def test_progress_events_count_up_to_the_report(corpus, index_dir, embedder, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n garbage")
    events = []
    report = ingest_paths([corpus, broken], index_dir, embedder, on_progress=events.append)
    last = events[-1]
    assert (last.files_done, last.files_total) == (4, 4)
    assert last.pages_done == report.pages == last.pages_estimated
    assert last.bytes_done == last.bytes_total > 0
    assert [e.pages_done for e in events] == sorted(e.pages_done for e in events)
    assert sorted(map(Path, report.added)) == sorted(p for p in corpus.rglob("*") if p.is_file())
    again = ingest_paths([corpus], index_dir, embedder, on_progress=events.append)
    assert again.added == again.updated == [] and events[-1].bytes_total == 0


@pytest.mark.parametrize("workers", [0, -1, 2])
def test_parsing_in_worker_processes_stores_the_same_index(
    corpus, tmp_path, embedder, workers, monkeypatch
):
    monkeypatch.setattr("ingest.parse._POOL_MIN_BYTES", 0)  # let 2 workers be processes
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n garbage")
    index_dir = tmp_path / f"index-{workers}"
    report = ingest_paths([corpus, broken], index_dir, embedder, IngestConfig(parse_workers=workers))
    assert (report.files_added, len(report.files_failed)) == (3, 1)
    with Index.open(index_dir, embedder) as index:
        chunks = sorted((Path(d["source"]).name, d["chunks"]) for d in index.documents())
    assert chunks == [("Rapport d'été 2024.pdf", 2), ("engines.pdf", 3), ("training.PDF", 2)]


def test_parse_workers_end_with_the_process_that_started_them_even_on_kill_9():
    code = (
        "import sys, time\n"
        "from ingest.config import IngestConfig\n"
        "from ingest.parse import WorkerPool\n"
        "pool = WorkerPool(2, IngestConfig())\n"
        "print(' '.join(str(p.pid) for p in pool._procs), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _running(pid)]
        time.sleep(0.1)
    assert alive == []


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits to be reaped by its (re)parent.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
