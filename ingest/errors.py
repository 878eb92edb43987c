"""Errors raised by the ingest package.

Library code raises these; the CLI and the HTTP server translate them into one clear line or a
JSON error. Every message says what is wrong, what was found and how to fix it.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every error the ingest package raises on purpose."""

    code = "ingest"


class PdfReadFailure(IngestError):
    """A file cannot be read as a PDF with a text layer.

    Raised per file by the loader; `ingest_paths` turns it into a `FileFailure` in the report so
    one bad file never stops a batch.

    Attributes:
        path: the file that failed.
        reason: why, without the path (e.g. "encrypted; ...", "not a PDF (starts with ...)").
    """

    code = "pdf_read"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexNotFoundError(IngestError):
    """There is no index at the given directory."""

    code = "not_found"


class IndexMismatchError(IngestError):
    """The index was built with another embedder (name or vector size) than the one given."""

    code = "index_mismatch"


class IngestConfigError(IngestError):
    """An `IngestConfig` has one or more invalid fields (all of them are listed in the message)."""

    code = "ingest_config"


class IndexBusyError(IngestError):
    """Another process holds the index's writer lock (an ingest or a removal is running)."""

    code = "conflict"


class SearchFilterError(IngestError):
    """A search filter is invalid or names no indexed document (`--source`, page range)."""

    code = "search_filter"


class IndexUnavailableError(IngestError):
    """The index's database cannot be reached (a PostgreSQL store that is down or refuses us)."""

    code = "index_unavailable"
