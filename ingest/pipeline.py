"""`ingest_paths`: bring an index up to date with a set of PDF files."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.chunk import chunk_pages
from ingest.config import IngestConfig
from ingest.embed import Embedder, LazyEmbedder, embed_texts
from ingest.errors import IndexNotFoundError
from ingest.files import file_sha256, file_size, find_pdfs
from ingest.ocr import find_tesseract
from ingest.parse import Reader
from ingest.records import Chunk, FileFailure, IngestProgress, IngestReport
from ingest.location import open_index
from ingest.writer import IndexWriter

Progress = Callable[[str], None]

# Chunks collected across files before calling the embedder, in units of batch_size: enough
# for full batches of similar length (little padding).
_PENDING_BATCHES = 16
# The most chunks held before embedding while workers still parse: a wave of ~800 pages.
_MAX_PENDING_BATCHES = 128


def ingest_paths(
    paths: Sequence[str | Path],
    index_dir: str | Path,
    embedder: Embedder,
    config: IngestConfig | None = None,
    *,
    prune: bool = False,
    progress: Progress | None = None,
    on_progress: Callable[[IngestProgress], None] | None = None,
) -> IngestReport:
    """Add new PDFs to the index, re-ingest changed ones, skip unchanged ones.

    A file is identified by its absolute path and its content by SHA-256. All changes of the
    run are committed together at the end, so an interrupted run changes nothing. Files that
    cannot be read are reported in `files_failed` and never stop the run; a stored earlier
    version of such a file stays in the index.

    Args:
        paths: PDF files and folders (searched recursively for *.pdf).
        index_dir: the index directory, or a PostgreSQL URL (``postgresql://...``); created if missing.
        embedder: must match the embedder the index was built with.
        config: chunking and batching; defaults to `IngestConfig()`.
        prune: remove documents whose file no longer exists on disk.
        progress: called with one short line per file and during long embeddings.
        on_progress: called with counts after each file, for a progress bar.

    Returns:
        What the run did; `pages` and `chunks` count the added and updated files only.

    Raises:
        IndexMismatchError: the index was built with another embedder.
        IndexBusyError: another ingest is writing to the index.
        IngestError: the index cannot be opened or written, or `config.ocr` is set and
            Tesseract is not installed.
    """
    started, loading = time.perf_counter(), _load_seconds(embedder)
    config = config if config is not None else IngestConfig()
    say = progress or (lambda _line: None)
    report = IngestReport()
    if config.ocr:
        find_tesseract()  # fail before any work, not at the first scanned page
    files, failures = find_pdfs(paths)
    for failure in failures:
        report.files_failed.append(failure)
        say(f"failed {failure.path}: {failure.error}")
    if not files:
        report.warnings.append("no PDF files found in the given paths")
    if files or prune:
        try:
            index = open_index(index_dir, embedder, create=bool(files))
        except IndexNotFoundError:
            index = None  # pruning an index that does not exist: nothing to do
        if index is not None:
            with index, index.writer(config) as writer:
                run = _Run(writer, embedder, config, report, say, on_progress)
                if prune:
                    run.prune()
                run.ingest(files)
                _warn_other_chunking(writer, config, report)
    # A model loaded on first use is left out, as one loaded before the call always was.
    report.seconds = round(time.perf_counter() - started - (_load_seconds(embedder) - loading), 3)
    return report


@dataclass
class _Pending:
    source: str
    sha256: str
    pages: int
    chunks: list[Chunk]


class _Run:
    """The state of one ingest run inside its transaction."""

    def __init__(
        self,
        writer: IndexWriter,
        embedder: Embedder,
        config: IngestConfig,
        report: IngestReport,
        say: Progress,
        on_progress: Callable[[IngestProgress], None] | None = None,
    ) -> None:
        self.writer, self.embedder, self.config = writer, embedder, config
        self.report, self.say = report, say
        self.pending: list[_Pending] = []
        self.claimed: dict[str, str] = {}  # sha256 -> source, for files stored by this run
        self.displaced: set[str] = set()  # sources removed early because a twin took their bytes
        self.hashes: dict[str, str] = {}  # source -> sha256 on disk now
        self.tracker = _Tracker(on_progress)

    def prune(self) -> None:
        for source in self.writer.sources():
            if not Path(source).is_file():
                self.writer.remove(source)
                self.report.files_removed += 1
                self.report.removed.append(source)
                self.say(f"removed {source}: the file no longer exists")

    def ingest(self, files: list[Path]) -> None:
        # Hash everything first: deciding whether two paths hold the same bytes needs the
        # current content of both, and a later file may have changed too.
        started = time.perf_counter()
        for file in files:
            try:
                self.hashes[str(file)] = file_sha256(file)
            except OSError as exc:
                self.fail(str(file), f"cannot read: {exc.strerror or exc}")
        self.report.timings["hash"] = time.perf_counter() - started
        jobs = self.to_parse(files)
        to_read = sum(file_size(source) for source, _ in jobs)
        self.tracker.start(len(files), to_read)
        with Reader(jobs, self.config, to_read) as reader:
            for n, file in enumerate(files, start=1):
                if str(file) in self.hashes:
                    self.ingest_file(str(file), f"[{n}/{len(files)}]", reader)
                else:
                    self.tracker.file_done(str(file))
            self.flush()
        self.report.timings["parse_wait"] = reader.waited

    def to_parse(self, files: list[Path]) -> list[tuple[str, str]]:
        """(source, sha256) of the files that will need reading, in order, each content once.

        A prediction for reading ahead: `ingest_file` decides for good and parses any file
        this missed in the calling process.
        """
        jobs, seen = [], set()
        for file in files:
            source = str(file)
            sha = self.hashes.get(source)
            if sha is None or sha in seen or self.writer.sha256_of(source) == sha:
                continue
            seen.add(sha)
            jobs.append((source, sha))
        return jobs

    def ingest_file(self, source: str, label: str, reader: Reader) -> None:
        name, sha = Path(source).name, self.hashes[source]
        stored = self.writer.sha256_of(source)
        if stored == sha:
            self.report.files_unchanged += 1
            self.say(f"{label} unchanged {name}")
            self.tracker.file_done(source)
            return
        updated = stored is not None or source in self.displaced
        twin = self.twin(source, sha)
        if twin is not None:
            # The chunk ids derive from the bytes, so identical files cannot both be stored;
            # retrieving the same text twice would only crowd out other hits anyway.
            if stored is not None:
                self.writer.remove(source)
            if updated:
                self.report.files_updated += 1
                self.report.updated.append(source)
            else:
                self.report.files_unchanged += 1
            self.report.warnings.append(f"{source} has the same content as {twin}; stored once")
            self.say(f"{label} skipped {name}: same content as {twin}")
            self.tracker.file_done(source)
            return
        parsed = reader.take(source, sha)
        self.report.warnings.extend(parsed.warnings)
        if parsed.error is not None:
            self.fail(source, parsed.error, label)  # a stored earlier version stays as it was
            self.tracker.file_done(source, read=True)
            return
        pages = parsed.pages
        chunks = chunk_pages(pages, sha, self.config)
        self.pending.append(_Pending(source, sha, len(pages), chunks))
        self.claimed[sha] = source
        if updated:
            self.report.files_updated += 1
            self.report.updated.append(source)
        else:
            self.report.files_added += 1
            self.report.added.append(source)
        self.report.pages += len(pages)
        self.report.chunks += len(chunks)
        verb = "updated" if updated else "added"
        self.say(f"{label} {verb} {name}: {_count(len(pages), 'page')}, {_count(len(chunks), 'chunk')}")
        # Embed once enough chunks wait, but not while workers are still parsing (unless too
        # many wait): parsing and embedding each run faster with every core to themselves.
        pending = sum(len(p.chunks) for p in self.pending)
        if pending >= _PENDING_BATCHES * self.config.batch_size and (
            not reader.in_flight or pending >= _MAX_PENDING_BATCHES * self.config.batch_size
        ):
            self.flush()

    def twin(self, source: str, sha: str) -> str | None:
        """Another path that holds these bytes on disk and in the index (or in this run)."""
        if sha in self.claimed:
            return self.claimed[sha]
        for other in self.writer.sources_with_sha(sha):
            if other == source:
                continue
            on_disk = self.hashes[other] if other in self.hashes else _sha_or_none(other)
            if on_disk == sha:
                return other
            # The stored bytes are no longer at `other` (changed, moved or deleted): they now
            # live at `source`, so drop the stale entry instead of refusing the new path.
            self.writer.remove(other)
            self.displaced.add(other)
            self.report.warnings.append(
                f"{other} no longer holds the content it was indexed with; that content is "
                f"now indexed as {source}"
            )
        return None

    def flush(self) -> None:
        """Embed the pending chunks and store their documents."""
        if not self.pending:
            return
        texts = [c.text for p in self.pending for c in p.chunks]
        if isinstance(self.embedder, LazyEmbedder):
            self.embedder.load()  # here, so that loading is not timed as embedding
        started = time.perf_counter()
        vectors = embed_texts(self.embedder, texts, self.config.batch_size, self.say)
        embedded = time.perf_counter()
        start = 0
        for p in self.pending:
            end = start + len(p.chunks)
            self.writer.put(p.source, p.sha256, p.pages, p.chunks, vectors[start:end])
            start = end
        timings = self.report.timings
        timings["embed"] = timings.get("embed", 0.0) + embedded - started
        timings["store"] = timings.get("store", 0.0) + time.perf_counter() - embedded
        for p in self.pending:
            self.tracker.file_done(p.source, p.pages, read=True)
        self.pending.clear()

    def fail(self, path: str, error: str, label: str = "") -> None:
        self.report.files_failed.append(FileFailure(path, error))
        self.say(f"{label} failed {Path(path).name}: {error}".lstrip())


class _Tracker:
    """Counts finished files, pages and bytes for `on_progress`."""

    def __init__(self, callback: Callable[[IngestProgress], None] | None) -> None:
        self.callback = callback
        self.state = IngestProgress(0, 0, 0, 0, 0)

    def start(self, files: int, bytes_to_read: int) -> None:
        self.state = IngestProgress(0, files, 0, 0, bytes_to_read)
        self._emit()

    def file_done(self, source: str, pages: int = 0, *, read: bool = False) -> None:
        """Count a finished file; `read` if it was parsed (stored or failed)."""
        s = self.state
        self.state = dataclasses.replace(
            s,
            files_done=s.files_done + 1,
            pages_done=s.pages_done + pages,
            bytes_done=min(s.bytes_total, s.bytes_done + (file_size(source) if read else 0)),
        )
        self._emit()

    def _emit(self) -> None:
        if self.callback is not None:
            self.callback(self.state)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _load_seconds(embedder: Embedder) -> float:
    """Seconds spent so far loading the model of an embedder that loads on first use."""
    return embedder.load_seconds if isinstance(embedder, LazyEmbedder) else 0.0


def _sha_or_none(path: str) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _warn_other_chunking(writer: IndexWriter, config: IngestConfig, report: IngestReport) -> None:
    other = writer.other_chunking()
    if other:
        report.warnings.append(
            f"{other} document(s) in the index were chunked with other settings than this "
            f"run's (chunk_size={config.chunk_size}, chunk_overlap={config.chunk_overlap}) "
            "and keep their old chunking; ingest into a new --index to rechunk everything"
        )
