"""The SQL of the PostgreSQL store: schema, connections, and the reads both searches and writes use.

pgvector holds the vectors (an HNSW index for inner product: the embeddings are normalised, so
it ranks by cosine), PostgreSQL's full-text search the keywords (a generated ``tsvector`` column
with a GIN index, ranked by ``ts_rank_cd``), and the tables mirror the embedded store's:
``hybrid_meta``, ``hybrid_documents``, ``hybrid_chunks``, ``hybrid_postings`` (the keyword
index, ``ingest.pg_keyword``) and ``hybrid_state`` (``ingest.pg_state``). Every name starts with ``hybrid_`` so
the store can share a database; two indexes in one database use two schemas
(``?options=-csearch_path%3Dteam_a`` in the URL).
"""

from __future__ import annotations

import json
import os
import re
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ingest.errors import IngestError

if TYPE_CHECKING:
    import numpy as np

SCHEMES = ("postgresql://", "postgres://")
# The full-text configuration: English stemming, as the embedded store's porter tokenizer.
TS_CONFIG = "english"


def is_url(location: object) -> bool:
    """Whether an index location names a PostgreSQL database rather than a directory."""
    return isinstance(location, str) and location.strip().lower().startswith(SCHEMES)


def display(url: str) -> str:
    """The URL without its password (``user:secret@`` or ``?password=secret``), for messages and logs."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else ""))
    query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
    return urlunsplit(parts._replace(query=query))


def connect(url: str, *, purpose: str = "search") -> Any:
    """A connection in autocommit mode; callers open transactions themselves.

    ``application_name`` says which hybrid process holds it, so ``pg_stat_activity`` (and the
    message a refused ingest prints) names the holder.

    Raises:
        IngestError: psycopg is missing, or the server cannot be reached or refuses us.
    """
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise IngestError("a PostgreSQL index needs psycopg: pip install 'psycopg[binary]'") from exc
    name = f"hybrid {purpose} pid {os.getpid()} on {socket.gethostname()}"[:63]
    try:
        # prepare_threshold=None: no server-side prepared statements, which a pooler in
        # transaction mode (PgBouncer before 1.21) cannot route to the right server connection.
        return psycopg.connect(url, autocommit=True, application_name=name, connect_timeout=10, prepare_threshold=None)
    except psycopg.Error as exc:
        raise IngestError(f"cannot connect to the PostgreSQL index {display(url)}: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def schema(dim: int) -> list[str]:
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE TABLE IF NOT EXISTS hybrid_meta (key text PRIMARY KEY, value jsonb NOT NULL)",
        """CREATE TABLE IF NOT EXISTS hybrid_documents (
            source text PRIMARY KEY, sha256 text NOT NULL, pages integer NOT NULL,
            chunks integer NOT NULL, ingested_at text NOT NULL, chunk_size integer NOT NULL,
            chunk_overlap integer NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS hybrid_documents_sha256 ON hybrid_documents (sha256)",
        f"""CREATE TABLE IF NOT EXISTS hybrid_chunks (
            id bigserial PRIMARY KEY, chunk_id text NOT NULL UNIQUE, source text NOT NULL,
            page integer NOT NULL, text text NOT NULL, embedding vector({int(dim)}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('{TS_CONFIG}', text)) STORED)""",
        "CREATE INDEX IF NOT EXISTS hybrid_chunks_source ON hybrid_chunks (source, page)",
        "CREATE INDEX IF NOT EXISTS hybrid_chunks_tsv ON hybrid_chunks USING gin (tsv)",
        "CREATE INDEX IF NOT EXISTS hybrid_chunks_embedding ON hybrid_chunks USING hnsw (embedding vector_ip_ops)",
        # The keyword index BM25 reads (ingest.pg_keyword): each chunk's lexemes, how often each
        # occurs in it, and the chunk's length in distinct lexemes.
        """CREATE TABLE IF NOT EXISTS hybrid_postings (
            lexeme text NOT NULL, chunk bigint NOT NULL REFERENCES hybrid_chunks (id) ON DELETE CASCADE,
            tf integer NOT NULL, length integer NOT NULL, PRIMARY KEY (lexeme, chunk))""",
        "CREATE INDEX IF NOT EXISTS hybrid_postings_chunk ON hybrid_postings (chunk)",
    ]


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of one vector."""
    import numpy as np

    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


def read_meta(conn: Any) -> dict[str, Any]:
    """All metadata; empty when the store has no tables yet."""
    # In this schema only: with search_path "team_a, public", public's tables are not ours.
    exists = conn.execute("SELECT to_regclass(quote_ident(current_schema()) || '.hybrid_meta') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    return {key: value for key, value in conn.execute("SELECT key, value FROM hybrid_meta")}


def set_meta(conn: Any, **values: Any) -> None:
    for key, value in values.items():
        conn.execute(
            "INSERT INTO hybrid_meta (key, value) VALUES (%s, %s::jsonb)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, json.dumps(value)),
        )


def counts(conn: Any) -> tuple[int, int]:
    """(documents, chunks): from the documents table, which records each one's chunk count."""
    docs, chunks = conn.execute("SELECT count(*), coalesce(sum(chunks), 0) FROM hybrid_documents").fetchone()
    return int(docs), int(chunks)


def documents(conn: Any) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT source, sha256, pages, chunks FROM hybrid_documents ORDER BY source COLLATE \"C\"")
    return [{"source": s, "sha256": h, "pages": p, "chunks": c} for s, h, p, c in rows]
