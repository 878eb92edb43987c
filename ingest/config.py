"""Settings of an ingest run."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import IngestConfigError


@dataclass
class IngestConfig:
    """How documents are cut into chunks and embedded.

    Raises:
        IngestConfigError: from `__post_init__`, listing every invalid field at once.
    """

    # Characters, not tokens: 800 characters of English prose are ~200 word pieces, inside the
    # 256-token window of all-MiniLM-L6-v2, so nothing is silently truncated by the embedder.
    chunk_size: int = 800
    # Characters shared by neighbouring chunks of a page, so a fact cut at a boundary still
    # appears whole in one of them.
    chunk_overlap: int = 120
    # Texts per call to the embedder; bigger is faster until memory runs out.
    batch_size: int = 32
    # A file with more pages than this is reported as failed instead of read (0 = no limit):
    # reading a 100,000-page PDF would hold the run, and its single transaction, for hours.
    max_pages: int = 5000
    # Read pages that have no text layer, only images (scans), with the local `tesseract`
    # executable. Off by default: OCR takes seconds per page and needs Tesseract installed.
    ocr: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("chunk_size", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.chunk_overlap) or self.chunk_overlap < 0:
            problems.append(
                f"chunk_overlap must be a non-negative integer, got {self.chunk_overlap!r}"
            )
        elif _is_int(self.chunk_size) and self.chunk_overlap >= self.chunk_size:
            problems.append(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        if not _is_int(self.max_pages) or self.max_pages < 0:
            problems.append(
                f"max_pages must be a non-negative integer (0 = no limit), got {self.max_pages!r}"
            )
        if not isinstance(self.ocr, bool):
            problems.append(f"ocr must be true or false, got {self.ocr!r}")
        if problems:
            raise IngestConfigError("invalid ingest config: " + "; ".join(problems))


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but `chunk_size=True` is a mistake, not a size of 1.
    return isinstance(value, int) and not isinstance(value, bool)
