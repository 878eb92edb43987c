"""Copy an embedded index into PostgreSQL (``hybrid migrate``): what moves a team from one
machine's index to the store its servers share.

The documents, their chunks and the chunks' vectors are copied as stored: nothing is parsed or
embedded again, so the copy searches exactly as the original does. One transaction on the
PostgreSQL side (all or nothing, under the ingest lock), one read snapshot on the SQLite side
(an ingest running there meanwhile is not half copied). Documents the target already holds with
the same content are skipped, so a second run copies only what changed; nothing is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest import db
from ingest.config import IngestConfig
from ingest.embed import Embedder, LazyEmbedder
from ingest.errors import IndexNotFoundError, IngestError
from ingest.postgres import PgIndex
from ingest.store import STORE_FILE


@dataclass
class MigrateReport:
    """What a copy did: documents copied and already there, chunks copied, seconds."""

    source: str
    target: str
    documents_copied: int = 0
    documents_unchanged: int = 0
    chunks_copied: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def migrate_index(source: str | Path, target: str, *, progress: Callable[[str], None] | None = None) -> MigrateReport:
    """Copy the embedded index in ``source`` (a directory) into the PostgreSQL index at ``target``.

    The target is created if empty; one that exists must have been built with the same embedder.

    Raises:
        IndexNotFoundError: no index in ``source``.
        IndexMismatchError: the target holds an index of another embedder.
        IndexBusyError: an ingest is writing to the target.
        IngestError: the source cannot be read.
    """
    started = time.perf_counter()
    say = progress or (lambda _line: None)
    directory = Path(source).expanduser().resolve()
    store = directory / STORE_FILE
    if not store.is_file():
        raise IndexNotFoundError(f"no index at {directory}: nothing to copy (give the index directory with --index)")
    conn = db.connect(store)
    try:
        conn.execute("BEGIN")  # one snapshot of the source for the whole copy
        meta = db.read_meta(conn)
        if not meta.get("embedder") or not isinstance(meta.get("dim"), int):
            raise IngestError(f"{store} records no embedder; it is not an index this version can copy")
        recorded = LazyEmbedder(_no_model(meta["embedder"]), name=meta["embedder"], dim=meta["dim"])
        config = IngestConfig(
            chunker=meta.get("chunker") or IngestConfig.chunker,
            chunk_size=meta.get("chunk_size") or IngestConfig.chunk_size,
            chunk_overlap=meta.get("chunk_overlap") or IngestConfig.chunk_overlap,
        )
        with PgIndex.open(target, recorded, create=True) as index:
            report = MigrateReport(source=str(directory), target=index.path)
            documents = db.document_rows(conn)
            with index.writer(config) as writer:
                for number, row in enumerate(documents, start=1):
                    if writer.sha256_of(row["source"]) == row["sha256"]:
                        report.documents_unchanged += 1
                        continue
                    chunks, vectors = db.chunks_of(conn, row["source"], meta["dim"])
                    writer.put(row["source"], row["sha256"], row["pages"], chunks, vectors, recorded=row)
                    report.documents_copied += 1
                    report.chunks_copied += len(chunks)
                    say(f"  copied {number}/{len(documents)} {Path(row['source']).name} ({len(chunks)} chunks)")
    finally:
        conn.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _no_model(name: str) -> Callable[[], Embedder]:
    def refuse() -> Embedder:  # a copy reuses the stored vectors: it never embeds
        raise IngestError(f"copying an index embeds nothing, yet the embedder {name!r} was asked for")

    return refuse
