"""Settings of an ingest run."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import IngestConfigError

EMBED_DTYPES = ("auto", "float32", "bfloat16")
CHUNKERS = ("structure", "plain")


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
    # "structure": cut pages between sections, paragraphs and table rows, keeping headings
    # with their text and repeating a section's heading on each of its chunks; "plain": the
    # recursive character splitter alone (separators: blank line, line, space).
    chunker: str = "structure"
    # Texts per forward pass of the embedder (MiniLM in bfloat16 on 2 CPUs, 1,549 chunks:
    # 10.3 s at 16, 9.2 s at 32, 13.4 s at 128).
    batch_size: int = 32
    # Number format of the embedder's weights: "auto" is bfloat16 on CPUs with native bf16
    # (AMX or AVX512-BF16; ~3x faster here, cosine to float32 vectors > 0.999), else float32.
    embed_dtype: str = "auto"
    # Processes that parse PDFs in parallel (see ingest.parse): -1 = automatic, one per CPU
    # (at most 8) when at least 2 files and 1 MB are to be read; 0 = parse in the main process.
    parse_workers: int = -1
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
        if self.chunker not in CHUNKERS:
            problems.append(f"chunker must be one of {', '.join(CHUNKERS)}, got {self.chunker!r}")
        if self.embed_dtype not in EMBED_DTYPES:
            problems.append(
                f"embed_dtype must be one of {', '.join(EMBED_DTYPES)}, got {self.embed_dtype!r}"
            )
        if not _is_int(self.parse_workers) or self.parse_workers < -1:
            problems.append(
                "parse_workers must be -1 (automatic), 0 (no workers) or a positive integer, "
                f"got {self.parse_workers!r}"
            )
        if not isinstance(self.ocr, bool):
            problems.append(f"ocr must be true or false, got {self.ocr!r}")
        if problems:
            raise IngestConfigError("invalid ingest config: " + "; ".join(problems))


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but `chunk_size=True` is a mistake, not a size of 1.
    return isinstance(value, int) and not isinstance(value, bool)


SEARCH_MODES = ("hybrid", "dense", "keyword")


@dataclass
class SearchConfig:
    """How passages are found for a question.

    Raises:
        IngestConfigError: from `__post_init__`, listing every invalid field at once.
    """

    # "hybrid" fuses embedding similarity and BM25 keyword ranks (reciprocal rank fusion);
    # "dense" or "keyword" use one of them alone.
    mode: str = "hybrid"
    # Hits read from each ranking before fusing or reranking.
    candidates: int = 50
    # Weight of the BM25 ranking in the fusion, the dense ranking's being 1. Keywords pin
    # down the page (figures, names, terms: page-level MRR 0.067 -> 0.126 at 0.5 on SEC
    # filings), but across near-identical documents they also pull in the wrong one; 0.5
    # keeps most of the first and little of the second (docs/how-to/search.md).
    keyword_weight: float = 0.5
    # A local cross-encoder (a sentence-transformers CrossEncoder directory or a cached hub id)
    # that re-scores the top passages; "" = no reranking. Slower per query, often more precise.
    reranker: str = ""
    # How many fused passages the reranker re-scores.
    rerank_depth: int = 20

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in SEARCH_MODES:
            problems.append(f"mode must be one of {', '.join(SEARCH_MODES)}, got {self.mode!r}")
        for name in ("candidates", "rerank_depth"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        weight = self.keyword_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 10:
            problems.append(f"keyword_weight must be a number from 0 to 10, got {weight!r}")
        if not isinstance(self.reranker, str):
            problems.append(f"reranker must be a model directory or id, got {self.reranker!r}")
        if problems:
            raise IngestConfigError("invalid search config: " + "; ".join(problems))
