"""Typed records passed between the ingest steps and returned to callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    """The text of one PDF page."""

    source: str  # absolute path of the PDF
    page: int  # 1-based, as a PDF viewer numbers pages
    text: str


@dataclass(frozen=True)
class Chunk:
    """A piece of one page's text: the unit that is embedded and retrieved."""

    chunk_id: str  # "<sha256[:12]>:p<page>:c<i>", stable for the same file bytes and settings
    source: str
    page: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A chunk returned by a search, with its cosine similarity to the query."""

    source: str
    page: int
    chunk_id: str
    score: float  # cosine similarity in [-1, 1]; higher is closer
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a hit in `hybrid search --json` and `POST /v1/search`."""
        return {
            "source": self.source,
            "page": self.page,
            "chunk_id": self.chunk_id,
            "score": self.score,
            "text": self.text,
        }


@dataclass(frozen=True)
class FileFailure:
    """A file (or path) that an ingest run rejected, and why."""

    path: str
    error: str


@dataclass
class IngestReport:
    """What one `ingest_paths` run did.

    `pages` and `chunks` count what this run ingested (added and updated files), not the size of
    the whole index; `Index.manifest` has the totals.
    """

    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_failed: list[FileFailure] = field(default_factory=list)
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # Seconds spent in each step: hash, parse_wait (parsing not hidden behind embedding),
    # embed, store. Steps overlap, so they need not add up to `seconds`.
    timings: dict[str, float] = field(default_factory=dict)
    # The paths behind the counts (unchanged files are only counted).
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `hybrid ingest --json` (the contract's keys plus "warnings")."""
        return {
            "files_added": self.files_added,
            "files_updated": self.files_updated,
            "files_unchanged": self.files_unchanged,
            "files_removed": self.files_removed,
            "files_failed": [{"path": f.path, "error": f.error} for f in self.files_failed],
            "pages": self.pages,
            "chunks": self.chunks,
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "timings": {step: round(t, 3) for step, t in self.timings.items()},
            "added": list(self.added),
            "updated": list(self.updated),
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class IngestProgress:
    """Where an ingest run is, for progress bars: counts so far and totals."""

    files_done: int
    files_total: int
    pages_done: int  # pages of added or updated files, parsed, embedded and stored
    bytes_done: int  # of the files that need reading, the bytes finished
    bytes_total: int

    @property
    def pages_estimated(self) -> int:
        """Total pages this run will store, extrapolated from bytes (exact once done)."""
        if self.bytes_done == 0:
            return self.pages_done
        return max(self.pages_done, round(self.pages_done * self.bytes_total / self.bytes_done))
