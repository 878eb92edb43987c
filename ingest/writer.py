"""The changes one ingest run makes to an index, inside one SQLite transaction."""

from __future__ import annotations

import sqlite3

import numpy as np

from ingest import db
from ingest.config import IngestConfig
from ingest.manifest import now
from ingest.records import Chunk


class IndexWriter:
    """Adds and removes documents; obtained from `Index.writer()`, which commits or rolls back.

    It remembers the row ids and vectors it added and the row ids it removed, so after the
    commit the in-memory FAISS index is patched instead of rebuilt.
    """

    def __init__(self, conn: sqlite3.Connection, config: IngestConfig) -> None:
        self._conn = conn
        self.config = config
        self.added: dict[int, np.ndarray] = {}
        self.removed: set[int] = set()
        self.changed = False

    def sha256_of(self, source: str) -> str | None:
        """The stored content hash of `source`, or None if it is not in the index."""
        return db.document_sha(self._conn, source)

    def sources_with_sha(self, sha256: str) -> list[str]:
        """Stored documents with these exact bytes."""
        return db.sources_with_sha(self._conn, sha256)

    def sources(self) -> list[str]:
        return [d["source"] for d in db.documents(self._conn)]

    def remove(self, source: str) -> None:
        """Remove a document and its chunks (no-op if it is not stored)."""
        for row_id in db.delete_document(self._conn, source):
            # A chunk added earlier in this run never reached FAISS: just forget it.
            if self.added.pop(row_id, None) is None:
                self.removed.add(row_id)
        self.changed = True

    def put(
        self, source: str, sha256: str, pages: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Store a document, replacing any earlier version of the same source."""
        self.remove(source)
        row = {
            "source": source,
            "sha256": sha256,
            "pages": pages,
            "chunks": len(chunks),
            "ingested_at": now(),
            "chunk_size": self.config.chunk_size,
            "chunk_overlap": self.config.chunk_overlap,
        }
        ids = db.insert_document(self._conn, row, chunks, vectors)
        self.added.update(zip(ids, vectors, strict=True))

    def other_chunking(self) -> int:
        """Stored documents chunked with settings other than this run's."""
        return db.count_other_chunking(
            self._conn, self.config.chunk_size, self.config.chunk_overlap
        )

