"""Parse PDFs in worker processes, all cores at once, ahead of the embedder.

pypdf is pure Python, so only processes parse in parallel. The workers are plain subprocesses
(`python -m ingest.parse_worker`) fed over pipes: nothing is forked (a fork would inherit the
index lock and torch's threads) and the caller's main module is never re-imported, so scripts
need no `if __name__ == "__main__":` guard. A worker exits when its pipe closes, so it never
outlives an ingest, even one killed with `kill -9`.

The pipeline parses a wave of files with every core, then embeds the wave with every core.
Measured on 2 CPUs (305 pages, 3 files): parsing then embedding in the main process took
16.5-18.9 s; a reader thread beside the embedder 14.6-18.0 s (they contend for the
interpreter lock and the cores); worker processes, wave by wave, see docs/how-to/ingest.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ingest.config import IngestConfig
from ingest.errors import IngestError, PdfReadFailure
from ingest.files import sha256_hex
from ingest.records import Page

# Below this many bytes to read, starting worker processes (~0.3 s each, in parallel) costs more
# than it saves. Bytes are a loose guide to parsing time: text-dense papers parse at ~3.6 s per
# MB on one core (21 statistics papers: 3.3 MB, 387 pages, 12 s), image-heavy reports far faster.
_POOL_MIN_BYTES = 1_000_000
# Automatic worker count: one per CPU, at most this many.
_MAX_AUTO_WORKERS = 8


@dataclass
class Parsed:
    """The outcome of reading one file: its pages, or why it could not be read."""

    source: str
    pages: list[Page] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_file(source: str, sha256: str, config: IngestConfig) -> Parsed:
    """Read and parse one file, checking it still has the bytes that were hashed.

    Never raises for a problem with the file itself; that is returned as `Parsed.error`.
    (An `IngestError` about the setup, such as OCR asked for without Tesseract, does raise.)
    """
    from ingest.load import load_pdf  # pypdf, only once a file is actually read

    result = Parsed(source)
    try:
        data = Path(source).read_bytes()
        if sha256_hex(data) != sha256:
            raise PdfReadFailure(source, "changed while being ingested; run again")
        result.pages = load_pdf(data, source, config, warn=result.warnings.append)
    except OSError as exc:
        result.error = f"cannot read: {exc.strerror or exc}"
    except PdfReadFailure as exc:
        result.error = exc.reason
    return result


def worker_count(config: IngestConfig, jobs: int, total_bytes: int) -> int:
    """Worker processes for this run; 0 means parse in the calling process."""
    if config.parse_workers >= 0:
        return min(config.parse_workers, jobs)
    if jobs < 2 or total_bytes < _POOL_MIN_BYTES:
        return 0
    return min(jobs, os.cpu_count() or 1, _MAX_AUTO_WORKERS)


class WorkerPool:
    """`workers` parser subprocesses; `submit` runs `parse_file` in a free one.

    A thread per worker waits on its pipe (threads that mostly wait cost nothing).
    """

    def __init__(self, workers: int, config: IngestConfig) -> None:
        self._config = dataclasses.asdict(config)
        self._free: queue.Queue[subprocess.Popen] = queue.Queue()
        self._procs = []
        for _ in range(workers):
            proc = subprocess.Popen(
                [sys.executable, "-m", "ingest.parse_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            self._procs.append(proc)
            self._free.put(proc)
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="hybrid-parse")

    def submit(self, source: str, sha256: str) -> Future[Parsed]:
        return self._threads.submit(self._run, source, sha256)

    def _run(self, source: str, sha256: str) -> Parsed:
        proc = self._free.get()
        try:
            request = {"source": source, "sha256": sha256, "config": self._config}
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError as exc:
            raise IngestError(f"a PDF parsing worker stopped: {exc}") from exc
        finally:
            self._free.put(proc)
        if not line:
            raise IngestError(
                f"a PDF parsing worker ended while reading {source} (out of memory?); "
                "run again, or set ingest.parse_workers = 0 to parse in one process"
            )
        reply = json.loads(line)
        if "fatal" in reply:
            raise IngestError(reply["fatal"])
        pages = [Page(source=source, page=n, text=text) for n, text in reply["pages"]]
        return Parsed(source, pages, reply["error"], reply["warnings"])

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        for proc in self._procs:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the worker's loop ends: it exits
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            with contextlib.suppress(OSError):
                proc.stdout.close()


class Reader:
    """Parses the given files in order, a few ahead of the caller, and hands results out in turn.

    Use as a context manager so the workers are stopped even when the run fails:

        with Reader(jobs, config) as reader:
            parsed = reader.take(source)
    """

    def __init__(self, jobs: Sequence[tuple[str, str]], config: IngestConfig, total_bytes: int) -> None:
        self.config = config
        self.waited = 0.0  # seconds the caller spent waiting for or doing parsing
        self._jobs = deque(jobs)  # (source, sha256) not yet submitted
        self._running: deque[tuple[str, Future[Parsed]]] = deque()
        workers = worker_count(config, len(jobs), total_bytes)
        self._pool = WorkerPool(workers, config) if workers else None
        self._ahead = workers

    def __enter__(self) -> Reader:
        self._fill()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    @property
    def in_flight(self) -> bool:
        """Whether workers are parsing files the caller has not taken yet."""
        return bool(self._running)

    def take(self, source: str, sha256: str) -> Parsed:
        """The parse of `source`: from the workers if it was queued, else parsed here and now."""
        started = time.perf_counter()
        try:
            # Files the caller decided not to parse after all (a twin) are dropped from the queue.
            while self._running and self._running[0][0] != source and self._queued(source):
                self._running.popleft()[1].cancel()
                self._fill()
            if self._running and self._running[0][0] == source:
                future = self._running.popleft()[1]
                self._fill()
                return future.result()
            return parse_file(source, sha256, self.config)
        finally:
            self.waited += time.perf_counter() - started

    def _queued(self, source: str) -> bool:
        return any(s == source for s, _ in self._running) or any(
            s == source for s, _ in self._jobs
        )

    def _fill(self) -> None:
        if self._pool is None:
            return
        while self._jobs and len(self._running) < self._ahead:
            source, sha = self._jobs.popleft()
            self._running.append((source, self._pool.submit(source, sha)))
