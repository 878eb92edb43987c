"""The SQLite side of an index: documents, chunk texts and vectors, and metadata.

SQLite is the single source of truth; the FAISS file is a cache rebuilt from the `vector`
column whenever its recorded generation differs from `meta.generation`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest import keyword
from ingest.records import Chunk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunk_overlap INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents (sha256);
CREATE TABLE IF NOT EXISTS chunks (
    -- AUTOINCREMENT: ids are never reused, so a stale FAISS id can never name another chunk.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    page INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL  -- float32, little-endian, `dim` values
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks (source);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open the store in autocommit mode; callers issue BEGIN/COMMIT themselves.

    WAL lets searches in other processes keep reading the last committed state while an
    ingest run writes. `timeout` (seconds) is how long a second writer waits for the lock.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def create_schema(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    """Create the tables and set the metadata keys that are not set yet."""
    # Statement by statement: executescript() would commit the caller's transaction first.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    keyword.create(conn)
    conn.executemany(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
        [(key, json.dumps(value)) for key, value in meta.items()],
    )


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """All metadata as a dict; empty if the meta table does not exist."""
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {key: json.loads(value) for key, value in rows}


def set_meta(conn: sqlite3.Connection, **values: Any) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [(key, json.dumps(value)) for key, value in values.items()],
    )


def generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(json.loads(row[0])) if row else 0


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(documents, chunks) stored."""
    docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    return docs, chunks


def documents(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT source, sha256, pages, chunks FROM documents ORDER BY source"
    ).fetchall()
    return [{"source": s, "sha256": h, "pages": p, "chunks": c} for s, h, p, c in rows]


def document_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every stored document's row, by source: what a copy of the index needs."""
    rows = conn.execute(
        "SELECT source, sha256, pages, chunks, ingested_at, chunk_size, chunk_overlap FROM documents ORDER BY source"
    )
    keys = ("source", "sha256", "pages", "chunks", "ingested_at", "chunk_size", "chunk_overlap")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def chunks_of(conn: sqlite3.Connection, source: str, dim: int) -> tuple[list[Chunk], np.ndarray]:
    """One document's chunks, in stored order, and their vectors (n, dim)."""
    rows = conn.execute(
        "SELECT chunk_id, source, page, text, vector FROM chunks WHERE source = ? ORDER BY id", (source,)
    ).fetchall()
    chunks = [Chunk(chunk_id=r[0], source=r[1], page=r[2], text=r[3]) for r in rows]
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return chunks, vectors


def document_sha(conn: sqlite3.Connection, source: str) -> str | None:
    row = conn.execute("SELECT sha256 FROM documents WHERE source = ?", (source,)).fetchone()
    return row[0] if row else None


def sources_with_sha(conn: sqlite3.Connection, sha256: str) -> list[str]:
    """Stored documents with these exact bytes."""
    rows = conn.execute(
        "SELECT source FROM documents WHERE sha256 = ? ORDER BY source", (sha256,)
    ).fetchall()
    return [r[0] for r in rows]


def count_other_chunking(conn: sqlite3.Connection, chunk_size: int, chunk_overlap: int) -> int:
    """How many documents were chunked with other settings than these."""
    return conn.execute(
        "SELECT COUNT(*) FROM documents WHERE chunk_size != ? OR chunk_overlap != ?",
        (chunk_size, chunk_overlap),
    ).fetchone()[0]


def insert_document(
    conn: sqlite3.Connection,
    row: dict[str, Any],
    chunks: list[Chunk],
    vectors: np.ndarray,
) -> list[int]:
    """Store one document and its chunks; returns the new chunk row ids in chunk order."""
    conn.execute(
        "INSERT INTO documents (source, sha256, pages, chunks, ingested_at, chunk_size,"
        " chunk_overlap) VALUES (:source, :sha256, :pages, :chunks, :ingested_at,"
        " :chunk_size, :chunk_overlap)",
        row,
    )
    ids = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        cursor = conn.execute(
            "INSERT INTO chunks (chunk_id, source, page, text, vector) VALUES (?, ?, ?, ?, ?)",
            (chunk.chunk_id, chunk.source, chunk.page, chunk.text, _blob(vector)),
        )
        ids.append(int(cursor.lastrowid))
    return ids


def delete_document(conn: sqlite3.Connection, source: str) -> list[int]:
    """Remove a document and its chunks; returns the removed chunk row ids."""
    ids = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE source = ?", (source,))]
    conn.execute("DELETE FROM chunks WHERE source = ?", (source,))
    conn.execute("DELETE FROM documents WHERE source = ?", (source,))
    return ids


def chunks_by_row_ids(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, Chunk]:
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, chunk_id, source, page, text FROM chunks WHERE id IN ({marks})", ids
    )
    return {r[0]: Chunk(chunk_id=r[1], source=r[2], page=r[3], text=r[4]) for r in rows}


def chunk_by_id(conn: sqlite3.Connection, chunk_id: str) -> Chunk | None:
    row = conn.execute(
        "SELECT chunk_id, source, page, text FROM chunks WHERE chunk_id = ?", (chunk_id,)
    ).fetchone()
    return Chunk(chunk_id=row[0], source=row[1], page=row[2], text=row[3]) if row else None


def _whole_word(word: str) -> tuple[re.Pattern[str], str]:
    """A regex for ``word`` as a whole word (any case) and a LIKE pattern that pre-filters rows.

    SQLite's LIKE narrows the candidates (case-insensitive for ASCII); the regex then checks word
    boundaries, so "Meta" is not found in "metadata".
    """
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", re.IGNORECASE)
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return pattern, f"%{escaped}%"


def _candidates(conn: sqlite3.Connection, word: str, where: str = "", args: Sequence[object] = ()):
    """Rows (source, text) that may contain ``word``: found with the FTS index when there is
    one (a phrase query: fast at any size), else with LIKE (a scan of every chunk)."""
    phrase = keyword.phrase_query(word)
    if phrase is not None and keyword.has_fts(conn):
        return conn.execute(
            f"SELECT c.source, c.text FROM {keyword.FTS_TABLE} JOIN chunks AS c"
            f" ON c.id = {keyword.FTS_TABLE}.rowid WHERE {keyword.FTS_TABLE} MATCH ?"
            + (f" AND {where}" if where else ""),
            [phrase, *args],
        )
    _, like = _whole_word(word)
    return conn.execute(
        "SELECT c.source, c.text FROM chunks AS c WHERE c.text LIKE ? ESCAPE '\\'"
        + (f" AND {where}" if where else ""),
        [like, *args],
    )


def mentions(conn: sqlite3.Connection, word: str, batch: int = 500) -> bool:
    """Whether any chunk contains ``word`` as a whole word, ignoring case."""
    pattern, _ = _whole_word(word)
    cursor = _candidates(conn, word)
    while rows := cursor.fetchmany(batch):
        if any(pattern.search(row[1]) for row in rows):
            return True
    return False


def mention_counts(conn: sqlite3.Connection, word: str, sources: Iterable[str]) -> dict[str, int]:
    """How often each of ``sources`` mentions ``word`` as a whole word, ignoring case."""
    sources = list(dict.fromkeys(sources))
    if not sources:
        return {}
    pattern, _ = _whole_word(word)
    marks = ",".join("?" * len(sources))
    counts = dict.fromkeys(sources, 0)
    for source, text in _candidates(conn, word, f"c.source IN ({marks})", sources):
        counts[source] += len(pattern.findall(text))
    return counts


def vectors_by_row_ids(conn: sqlite3.Connection, ids: Iterable[int], dim: int) -> dict[int, np.ndarray]:
    """The stored vectors of these chunk rows (missing rows are left out)."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", ids)
    return {row_id: np.frombuffer(blob, dtype="<f4", count=dim) for row_id, blob in rows}


def filtered_vectors(
    conn: sqlite3.Connection, where: str, args: Sequence[object], dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, vectors) of the chunks matching a WHERE fragment on `chunks`."""
    rows = conn.execute(f"SELECT id, vector FROM chunks WHERE {where}", list(args)).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
    return ids, vectors.reshape(len(rows), dim)


def iter_vectors(
    conn: sqlite3.Connection, dim: int, batch: int = 10_000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (row ids int64, vectors float32 (n, dim)) in batches, for rebuilding FAISS."""
    cursor = conn.execute("SELECT id, vector FROM chunks ORDER BY id")
    while rows := cursor.fetchmany(batch):
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
        yield ids, vectors.reshape(len(rows), dim).astype(np.float32)


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()
