"""Read PDFs ahead of the embedder, in worker processes.

pypdf is pure Python, so threads would take turns on one core; processes let the text of the
next files be extracted while the main process embeds the chunks of the previous ones.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ingest.config import IngestConfig
from ingest.errors import PdfReadFailure
from ingest.files import sha256_hex
from ingest.load import load_pdf
from ingest.records import Page

# Below this many bytes to read, starting worker processes (~0.3 s each) costs more than it saves.
_POOL_MIN_BYTES = 4_000_000
# With this many CPUs or fewer, the embedder's threads already use every core: a parsing process
# beside them made embedding slower than the parsing it hid (measured on 2 CPUs).
_MIN_CPUS_FOR_WORKERS = 4


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
    """Worker processes to use for this many files; 0 means parse in the calling process."""
    if config.parse_workers >= 0:
        return min(config.parse_workers, jobs)
    cpus = os.cpu_count() or 1
    if cpus <= _MIN_CPUS_FOR_WORKERS or jobs < 2 or total_bytes < _POOL_MIN_BYTES:
        return 0
    return min(jobs, cpus // 4)


class Reader:
    """Parses the given files in order, a few ahead of the caller, and hands results out in turn.

    Use as a context manager so the workers are stopped even when the run fails:

        with Reader(jobs, config) as reader:
            parsed = reader.take(source)
    """

    def __init__(self, jobs: Sequence[tuple[str, str]], config: IngestConfig) -> None:
        self.config = config
        self.waited = 0.0  # seconds the caller spent waiting for or doing parsing
        self._jobs = deque(jobs)  # (source, sha256) not yet submitted
        self._running: deque[tuple[str, Future[Parsed]]] = deque()
        sizes = sum(_size(source) for source, _ in jobs)
        workers = worker_count(config, len(jobs), sizes)
        self._pool = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            if workers
            else None
        )
        self._ahead = 2 * workers

    def __enter__(self) -> Reader:
        self._fill()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

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
            self._running.append((source, self._pool.submit(parse_file, source, sha, self.config)))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
