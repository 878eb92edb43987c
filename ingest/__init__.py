"""ingest: PDFs in, a searchable index out.

Load the text of each page (pypdf), cut pages into overlapping chunks, embed the chunks, and
store them in an index directory (SQLite for the records and vectors, FAISS for search).
A leaf package: it imports neither `hybrid`, `tune` nor `serve`.

    from ingest import Index, ingest_paths, load_embedder

    embedder = load_embedder()  # all-MiniLM-L6-v2, shipped in a wheel; no download
    report = ingest_paths(["docs/"], "my-index", embedder)
    hits = Index.open("my-index", embedder).search("what caused the engine failure?")
"""

from ingest.config import IngestConfig, SearchConfig
from ingest.embed import DEFAULT_EMBEDDER, Embedder, SentenceTransformerEmbedder, load_embedder
from ingest.errors import (
    IndexBusyError,
    IndexMismatchError,
    IndexNotFoundError,
    IngestConfigError,
    IngestError,
    PdfReadFailure,
    SearchFilterError,
)
from ingest.manifest import read_manifest
from ingest.pipeline import ingest_paths
from ingest.remove import remove_documents
from ingest.rank import MAX_PAGE
from ingest.rerank import Reranker
from ingest.records import Chunk, FileFailure, Hit, IngestProgress, IngestReport, Page
from ingest.store import Index

__all__ = [
    "DEFAULT_EMBEDDER",
    "MAX_PAGE",
    "Chunk",
    "Embedder",
    "FileFailure",
    "Hit",
    "Index",
    "IndexBusyError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IngestConfig",
    "IngestConfigError",
    "IngestError",
    "IngestProgress",
    "IngestReport",
    "Page",
    "PdfReadFailure",
    "Reranker",
    "SearchConfig",
    "SearchFilterError",
    "SentenceTransformerEmbedder",
    "ingest_paths",
    "load_embedder",
    "read_manifest",
    "remove_documents",
]
