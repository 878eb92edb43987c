"""Crash safety: a real ingest process killed with SIGKILL at chosen moments, and the writer lock.

After any kill the index opens, searches give a consistent answer (the last committed one), no
document is half stored, the lock is free, and the next ingest completes. Each child process
writes a marker file when it reaches its moment, so no test guesses a delay.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import Index, IndexBusyError, IngestConfig, ingest_paths, open_index, remove_documents
from ingest.lock import LOCK_FILE, STALE_TEMP_SECONDS, writer_lock
from ingest.store import STORE_FILE
from ingest.vectors import FAISS_FILE
from tests.ingest.conftest import ENGINES, SUMMER, TRAINING
from tests.support.pdfs import make_pdf

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ["turbine blade metal fatigue", "bird strike geese", "night flying hours"]
NEW = {  # three new files, three pages each, so a run writes documents between embeddings
    f"new {n} été.pdf": [f"Hangar {n} audit, page {p}: the hydraulic jack {n}{p} was recertified."
                         for p in range(1, 4)]
    for n in range(1, 4)
}
_MARKER_WAIT = 60  # seconds; generous for a loaded machine, reached only when a test is broken


@pytest.fixture
def first(tmp_path: Path, embedder) -> dict:
    """An index of three PDFs, and the results the tests must still see after a crash."""
    return _first(tmp_path, tmp_path / "index", embedder)


def _first(tmp_path: Path, index_dir: Path | str, embedder) -> dict:
    old = tmp_path / "old"
    make_pdf(old / "engines.pdf", ENGINES)
    make_pdf(old / "summer.pdf", SUMMER)
    make_pdf(old / "training.pdf", TRAINING)
    new = tmp_path / "new"
    for name, pages in NEW.items():
        make_pdf(new / name, pages)
    assert ingest_paths([old], index_dir, embedder).files_added == 3
    return {"old": old, "new": new, "index": index_dir, "state": _state(index_dir, embedder)}


def _state(index_dir: Path | str, embedder) -> dict:
    with open_index(index_dir, embedder) as index:
        hits = {q: [(h.chunk_id, round(h.score, 5)) for h in index.search(q, k=3)] for q in QUERIES}
        return {"documents": index.documents(), "chunks": len(index), "hits": hits}


def _start(moment: str, first: dict, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"{moment}.marker"
    args = [sys.executable, "-m", "tests.support.ingest_child", moment, str(marker), str(first["index"])]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*args, str(first["old"]), str(first["new"])],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return proc, marker


def _wait_for(marker: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + _MARKER_WAIT
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the ingest child ended before its moment: {out!r} {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the ingest child never reached its moment")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()  # SIGKILL: no cleanup code of ours runs
    proc.wait()
    assert proc.returncode == -9


def _check_whole(index_dir: Path) -> None:
    """Every stored document has exactly the chunks its row says, and no chunk is orphaned."""
    with sqlite3.connect(index_dir / STORE_FILE) as conn:
        bad = conn.execute(
            "SELECT d.source FROM documents d LEFT JOIN chunks c ON c.source = d.source "
            "GROUP BY d.source HAVING COUNT(c.id) != d.chunks"
        ).fetchall()
        orphans = conn.execute(
            "SELECT COUNT(*) FROM chunks WHERE source NOT IN (SELECT source FROM documents)"
        ).fetchone()[0]
    assert bad == [] and orphans == 0


def _lock_is_free(index_dir: Path) -> bool:
    try:
        with writer_lock(index_dir):
            return True
    except IndexBusyError:
        return False


@pytest.mark.parametrize("moment", ["parse", "embed"])
def test_a_kill_before_the_commit_leaves_the_previous_index(moment, first, tmp_path, embedder):
    proc, marker = _start(moment, first, tmp_path)
    _wait_for(marker, proc)
    _kill(proc)
    assert _state(first["index"], embedder) == first["state"]  # same documents, chunks, hits
    _check_whole(first["index"])
    assert _lock_is_free(first["index"])
    report = ingest_paths([first["old"], first["new"]], first["index"], embedder)
    assert (report.files_added, report.files_unchanged, report.files_failed) == (3, 3, [])
    with Index.open(first["index"], embedder) as index:
        assert len(index.documents()) == 6
        assert Path(index.search("hangar 2 audit hydraulic jack 22")[0].source).name == "new 2 été.pdf"


@pytest.mark.parametrize("moment", ["parse", "embed"])
def test_a_kill_mid_ingest_on_postgres_leaves_the_previous_index(moment, tmp_path, embedder, postgres_url):
    # The run's transaction dies with its connection: PostgreSQL rolls it back and drops the
    # advisory lock; the previous index is searchable throughout and the next run completes it.
    first = _first(tmp_path, postgres_url, embedder)
    proc, marker = _start(moment, first, tmp_path)
    _wait_for(marker, proc)
    with open_index(postgres_url, embedder) as serving:
        assert len(serving.documents()) == 3  # readers are not blocked by the running ingest
        if moment == "embed":
            with pytest.raises(IndexBusyError, match="hybrid ingest pid"), serving.writer(IngestConfig()):
                pass
        _kill(proc)
        assert _state(postgres_url, embedder) == first["state"]
        report = ingest_paths([first["old"], first["new"]], postgres_url, embedder)
        assert (report.files_added, report.files_unchanged, report.files_failed) == (3, 3, [])
        assert len(serving.documents()) == 6  # the open index sees it at once
        assert Path(serving.search("hangar 2 audit hydraulic jack 22")[0].source).name == "new 2 été.pdf"
        import psycopg

        with psycopg.connect(postgres_url) as conn:
            bad = conn.execute(
                "SELECT d.source FROM hybrid_documents d LEFT JOIN hybrid_chunks c ON c.source = d.source"
                " GROUP BY d.source, d.chunks HAVING count(c.id) != d.chunks"
            ).fetchall()
            assert bad == []


@pytest.mark.parametrize("moment", ["commit", "faiss"])
def test_a_kill_after_the_commit_keeps_the_new_documents(moment, first, tmp_path, embedder):
    proc, marker = _start(moment, first, tmp_path)
    _wait_for(marker, proc)
    _kill(proc)
    leftovers = list(first["index"].glob(f"{FAISS_FILE}.*.tmp"))
    assert len(leftovers) == (1 if moment == "faiss" else 0)
    _check_whole(first["index"])
    # The FAISS cache is stale (written for the previous generation): opening rebuilds it.
    with Index.open(first["index"], embedder) as index:
        assert len(index.documents()) == 6
        assert len(index) == first["state"]["chunks"] + 9
        assert Path(index.search("hangar 3 audit hydraulic jack 31")[0].source).name == "new 3 été.pdf"
        for query, hits in first["state"]["hits"].items():
            assert index.search(query, k=1)[0].chunk_id == hits[0][0]
    assert _lock_is_free(first["index"])
    for tmp in leftovers:  # as if the crash was a while ago
        old = time.time() - STALE_TEMP_SECONDS - 5
        os.utime(tmp, (old, old))
    report = ingest_paths([first["old"], first["new"]], first["index"], embedder)
    assert (report.files_added, report.files_unchanged, report.files_failed) == (0, 6, [])
    assert not any(tmp.exists() for tmp in leftovers)  # the next writer cleaned up


def test_while_an_ingest_runs_readers_search_and_a_second_writer_is_refused(
    first, tmp_path, embedder
):
    proc, marker = _start("embed", first, tmp_path)
    try:
        _wait_for(marker, proc)
        # The child holds the lock and an open transaction with documents written in it.
        assert _state(first["index"], embedder) == first["state"]
        with pytest.raises(IndexBusyError) as info:
            ingest_paths([first["new"]], first["index"], embedder)
        message = str(info.value)
        assert f"is being written by another ingest (pid {proc.pid}, started " in message
        assert message.endswith("wait for it to finish, or stop it, and run again")
        assert str(first["index"].resolve()) in message
        with Index.open(first["index"], embedder) as index, pytest.raises(IndexBusyError):
            remove_documents(index, [first["old"]])
    finally:
        _kill(proc)
    assert _state(first["index"], embedder) == first["state"]


def test_two_writers_in_one_process_are_kept_apart(first, embedder):
    with Index.open(first["index"], embedder) as one, Index.open(first["index"], embedder) as two:
        with one.writer(IngestConfig()) as writer:
            writer.remove(str(first["old"] / "engines.pdf"))
            with pytest.raises(IndexBusyError, match=f"pid {os.getpid()}"):
                with two.writer(IngestConfig()):
                    pass
            assert two.search(QUERIES[0], k=1)[0].chunk_id == first["state"]["hits"][QUERIES[0]][0][0]
        with two.writer(IngestConfig()):  # free again once the first is done
            pass
        assert len(two.documents()) == 2


def test_the_lock_file_says_who_holds_it_and_is_cleared_after(first):
    lock = first["index"] / LOCK_FILE
    with writer_lock(first["index"]):
        assert f'"pid": {os.getpid()}' in lock.read_text()
    assert lock.read_text() == ""


def test_young_temporary_files_are_left_alone(first):
    # A reader may be rebuilding the cache right now; only abandoned files are removed.
    young = first["index"] / f"{FAISS_FILE}.abc123.tmp"
    young.write_bytes(b"partial")
    with writer_lock(first["index"]):
        pass
    assert young.exists()


@pytest.mark.parametrize("platform", ["no fcntl", "no locks on the file system"])
def test_without_file_locks_writers_still_work(platform, first, embedder, monkeypatch):
    import errno

    import ingest.lock

    if platform == "no fcntl":
        monkeypatch.setattr(ingest.lock, "fcntl", None)
    else:
        def no_locks(fd, operation):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(ingest.lock.fcntl, "flock", no_locks)
    report = ingest_paths([first["old"], first["new"]], first["index"], embedder)
    assert (report.files_added, report.files_unchanged) == (3, 3)
