"""Where an index lives: a directory (the embedded SQLite + FAISS store, the default) or a
PostgreSQL URL (``postgresql://...``: pgvector, shared by many servers). One place decides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import manifest, pg_sql

if TYPE_CHECKING:
    from ingest.embed import Embedder
    from ingest.postgres import PgIndex
    from ingest.store import Index


def is_postgres(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a directory."""
    return pg_sql.is_url(location)


def describe(location: str | Path) -> str:
    """The location for messages and logs (a URL without its password)."""
    return pg_sql.display(location) if is_postgres(location) else str(location)


def open_index(location: str | Path, embedder: Embedder, *, create: bool = False) -> Index | PgIndex:
    """The index at ``location``: ``Index.open`` for a directory, ``PgIndex.open`` for a URL."""
    if is_postgres(location):
        from ingest.postgres import PgIndex

        return PgIndex.open(str(location).strip(), embedder, create=create)
    from ingest.store import Index

    return Index.open(location, embedder, create=create)


def read_manifest(location: str | Path) -> dict[str, Any]:
    """What built the index at ``location`` and how big it is, without loading an embedder.

    Raises:
        IndexNotFoundError: no index there.
        IngestError: the manifest (or the database) cannot be read.
    """
    if is_postgres(location):
        from ingest.postgres import read_meta

        return read_meta(str(location).strip())
    return manifest.read_manifest(location)
