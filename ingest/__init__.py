"""ingest: PDFs in, a searchable index out.

Load the text of each page (pypdf), cut pages into overlapping chunks, embed the chunks, and
store them in an index: a directory (SQLite for the records and vectors, FAISS for search), or
a PostgreSQL database with pgvector that many servers share (``open_index("postgresql://...")``).
A leaf package: it imports neither `hybrid`, `tune` nor `serve`.

    from ingest import Index, ingest_paths, load_embedder

    embedder = load_embedder()  # all-MiniLM-L6-v2, shipped in a wheel; no download
    report = ingest_paths(["docs/"], "my-index", embedder)
    hits = Index.open("my-index", embedder).search("what caused the engine failure?")

Configs, errors, records and the manifest import nothing heavy; the names that pull in numpy,
FAISS, pypdf or the text splitter are imported on first use, so `import ingest` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ingest.config import IngestConfig, SearchConfig
from ingest.errors import (
    IndexBusyError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexUnavailableError,
    IngestConfigError,
    IngestError,
    PdfReadFailure,
    SearchFilterError,
)
from ingest.location import describe, is_postgres, open_index, read_manifest
from ingest.rank import MAX_PAGE
from ingest.records import Chunk, FileFailure, Hit, IngestProgress, IngestReport, Page

if TYPE_CHECKING:
    from ingest.embed import (
        DEFAULT_EMBEDDER,
        Embedder,
        LazyEmbedder,
        SentenceTransformerEmbedder,
        embedder_name,
        load_embedder,
    )
    from ingest.migrate import MigrateReport, migrate_index
    from ingest.pipeline import ingest_paths
    from ingest.pg_state import SharedState
    from ingest.postgres import PgIndex
    from ingest.remove import remove_documents
    from ingest.rerank import Reranker
    from ingest.store import Index

# Names that pull in numpy, FAISS, pypdf or langchain's splitter, and the module each lives in.
_LAZY = {
    "DEFAULT_EMBEDDER": "ingest.embed",
    "Embedder": "ingest.embed",
    "LazyEmbedder": "ingest.embed",
    "SentenceTransformerEmbedder": "ingest.embed",
    "embedder_name": "ingest.embed",
    "load_embedder": "ingest.embed",
    "ingest_paths": "ingest.pipeline",
    "MigrateReport": "ingest.migrate",
    "migrate_index": "ingest.migrate",
    "remove_documents": "ingest.remove",
    "Reranker": "ingest.rerank",
    "Index": "ingest.store",
    "PgIndex": "ingest.postgres",
    "SharedState": "ingest.pg_state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'ingest' has no attribute {name!r}")


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
    "IndexUnavailableError",
    "IngestConfig",
    "IngestConfigError",
    "IngestError",
    "IngestProgress",
    "IngestReport",
    "LazyEmbedder",
    "MigrateReport",
    "Page",
    "PdfReadFailure",
    "PgIndex",
    "Reranker",
    "SearchConfig",
    "SearchFilterError",
    "SentenceTransformerEmbedder",
    "SharedState",
    "describe",
    "embedder_name",
    "ingest_paths",
    "is_postgres",
    "load_embedder",
    "migrate_index",
    "open_index",
    "read_manifest",
    "remove_documents",
]
