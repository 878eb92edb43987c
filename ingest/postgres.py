"""An index in PostgreSQL with pgvector: one store that many servers share.

The same faces as ``ingest.store.Index`` (search, documents, the writer of an ingest run), over
the tables of ``ingest.pg_sql``. Dense search is exact up to ``EXACT_MAX`` chunks, as in the
embedded store, and pgvector's HNSW index above (exact at any size over the rows a source or
page filter leaves); keyword search is BM25 over PostgreSQL's full-text index
(``ingest.pg_keyword``); the two are fused by reciprocal rank fusion as in the embedded store.

The safety promises hold as there: an ingest run is one transaction (a killed run is rolled back
by the server, and the previous index stays searchable); one writer at a time, by a
transaction-level advisory lock that the server drops with the transaction, however the process
ends; readers never wait (MVCC). Every server that opens the same URL sees a commit at its next
search: there is no local cache to reload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from ingest import db, keyword, pg_keyword, pg_sql
from ingest.config import IngestConfig, SearchConfig
from ingest.embed import Embedder, embed_texts
from ingest.errors import IndexBusyError, IndexNotFoundError, IndexUnavailableError, IngestError
from ingest.manifest import build_manifest, check_meta, initial_meta, now
from ingest.rank import check_pages, check_search, reciprocal_rank_fusion, require_sources
from ingest.records import Chunk, Hit
from ingest.vectors import EXACT_MAX

log = logging.getLogger(__name__)
T = TypeVar("T")

# The advisory lock of ingest runs: (this constant, a hash of the schema), so two indexes in
# two schemas of one database do not wait for each other.
_LOCK_CLASS = 0x68796272
_LOCK_SQL = "hashtext(current_schema())"
# pgvector reads at most this many candidates from the HNSW graph (its own upper limit).
_MAX_EF_SEARCH = 1000


class PgIndex:
    """Dense and keyword retrieval over the chunks stored in PostgreSQL. Safe to share between threads."""

    def __init__(self, url: str, embedder: Embedder, conn: Any) -> None:
        # Use PgIndex.open(); this only wires the parts together.
        self.url = url
        self.path = pg_sql.display(url)  # what messages name
        self.embedder = embedder
        self._conn = conn
        self._lock = threading.RLock()

    @classmethod
    def open(cls, url: str, embedder: Embedder, *, create: bool = False) -> PgIndex:
        """Open the index in the database at ``url``, creating its tables if asked.

        Raises:
            IndexNotFoundError: the database holds no index and ``create`` is False.
            IndexMismatchError: the index was built with another embedder.
            IndexUnavailableError: the database cannot be reached.
        """
        name, dim = embedder.name, embedder.dim
        conn = _connect(url, "search")
        try:
            meta = pg_sql.read_meta(conn)
            if not meta and create:
                with conn.transaction():
                    # Two first ingests at once: the second waits here, then finds the tables.
                    conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, {_LOCK_SQL})")
                    for statement in pg_sql.schema(dim):
                        conn.execute(statement)
                    if not pg_sql.read_meta(conn):
                        pg_sql.set_meta(conn, **initial_meta(name, dim))
                meta = pg_sql.read_meta(conn)
            if not meta:
                raise IndexNotFoundError(
                    f"no index in {pg_sql.display(url)}: run `hybrid ingest PATH --index {pg_sql.display(url)}` first"
                )
            check_meta(pg_sql.display(url), meta, name, dim)
        except BaseException as exc:
            conn.close()
            if _is_pg_error(exc):
                hint = " (an administrator runs CREATE EXTENSION vector once in this database)" if "extension" in str(exc) else ""
                raise IngestError(f"cannot open the PostgreSQL index {pg_sql.display(url)}: {exc}{hint}") from exc
            raise
        return cls(url, embedder, conn)

    @property
    def manifest(self) -> dict[str, Any]:
        """What built the index and how big it is: the embedded index's manifest.json, from the database."""
        return self._read(lambda conn: build_manifest(pg_sql.read_meta(conn), *pg_sql.counts(conn)))

    def __len__(self) -> int:
        return self._read(lambda conn: pg_sql.counts(conn)[1])

    def documents(self) -> list[dict[str, Any]]:
        """Stored documents: [{"source", "sha256", "pages", "chunks"}], sorted by source."""
        return self._read(pg_sql.documents)

    def chunk(self, chunk_id: str) -> Chunk | None:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT chunk_id, source, page, text FROM hybrid_chunks WHERE chunk_id = %s", (chunk_id,)
            ).fetchone()
        )
        return Chunk(chunk_id=row[0], source=row[1], page=row[2], text=row[3]) if row else None

    def mentions(self, word: str) -> bool:
        """Whether any stored chunk contains ``word`` as a whole word (case-insensitive)."""
        pattern, _ = db._whole_word(word)
        return any(pattern.search(text) for _, text in self._read(lambda conn: _candidates(conn, word)))

    def mention_counts(self, word: str, sources: Sequence[str]) -> dict[str, int]:
        """How often each document in ``sources`` mentions ``word`` (whole word, any case)."""
        counts = dict.fromkeys(dict.fromkeys(sources), 0)
        if not counts:
            return {}
        pattern, _ = db._whole_word(word)
        for source, text in self._read(lambda conn: _candidates(conn, word, list(counts))):
            counts[source] += len(pattern.findall(text))
        return counts

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        sources: Sequence[str] | None = None,
        pages: tuple[int | None, int | None] | None = None,
        mode: str = "hybrid",
        candidates: int = SearchConfig.candidates,
        keyword_weight: float = SearchConfig.keyword_weight,
    ) -> list[Hit]:
        """The k chunks that best answer ``query``, best first: as ``ingest.store.Index.search``."""
        check_search(k, candidates, mode)
        pages = check_pages(pages)
        if len(self) == 0:
            return []
        vector = pg_sql.vector_text(embed_texts(self.embedder, [query], batch_size=1)[0])
        depth = max(k, candidates)

        def run(conn: Any) -> list[Hit]:
            with conn.transaction():  # one snapshot for every ranking and the rows they name
                matched = None if sources is None else require_sources(sources, [d["source"] for d in pg_sql.documents(conn)])
                rankings, weights = [], []
                total = pg_sql.counts(conn)[1]
                if mode != "keyword":
                    weights.append(1.0)
                    rankings.append(_dense(conn, vector, depth, total, *keyword.filter_sql(matched, pages, alias="hybrid_chunks", mark="%s")))
                if mode != "dense":
                    where, args = keyword.filter_sql(matched, pages, alias="c", mark="%s")
                    found = pg_keyword.terms(conn, query)
                    average = _average_length(conn, total)
                    weights.append(keyword_weight)
                    rankings.append(pg_keyword.bm25(conn, found, total, average, depth, where, args))
                    rare = pg_keyword.rare_terms(found, total) if mode == "hybrid" else {}
                    if rare:  # as in the embedded store: the rare words alone, at the dense weight
                        weights.append(1.0)
                        rankings.append(pg_keyword.bm25(conn, rare, total, average, depth, where, args))
                rows = reciprocal_rank_fusion(rankings, weights)[:k]
                stored = conn.execute(
                    "SELECT id, chunk_id, source, page, text, -(embedding <#> %s::vector) FROM hybrid_chunks WHERE id = ANY(%s)",
                    (vector, rows),
                ).fetchall()
            by_id = {r[0]: Hit(r[2], r[3], r[1], float(r[5]), r[4]) for r in stored}
            return [by_id[row] for row in rows if row in by_id]

        return self._read(run)

    @contextmanager
    def writer(self, config: IngestConfig) -> Iterator[PgWriter]:
        """A transaction for an ingest run on a connection of its own: committed on normal exit,
        rolled back on error (or by the server, when the process dies).

        Raises:
            IndexBusyError: another ingest holds the lock; the message names it.
        """
        conn = _connect(self.url, "ingest")
        try:
            with conn.transaction():
                got = conn.execute(f"SELECT pg_try_advisory_xact_lock({_LOCK_CLASS}, {_LOCK_SQL})").fetchone()[0]
                if not got:
                    raise IndexBusyError(_busy_message(conn, self.path))
                writer = PgWriter(conn, config)
                yield writer
                if writer.changed:
                    generation = int(pg_sql.read_meta(conn).get("generation", 0)) + 1
                    pg_sql.set_meta(
                        conn,
                        generation=generation,
                        updated=now(),
                        chunker=config.chunker,
                        chunk_size=config.chunk_size,
                        chunk_overlap=config.chunk_overlap,
                    )
        except BaseException as exc:
            if _is_pg_error(exc):
                error = IndexUnavailableError if _is_connection_error(exc) else IngestError
                raise error(f"the ingest into {self.path} failed: {exc}; nothing was changed") from exc
            raise
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PgIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, query: Callable[[Any], T]) -> T:
        # One connection for reads, one query at a time. A connection the server dropped (a
        # restart, a failover) is replaced once; a database still down is a clear 503.
        with self._lock:
            for attempt in (1, 2):
                try:
                    return query(self._conn)
                except BaseException as exc:
                    if not _is_pg_error(exc) or not self._conn.closed and not _is_connection_error(exc):
                        raise
                    self._conn.close()
                    if attempt == 2:
                        raise IndexUnavailableError(f"the PostgreSQL index {self.path} cannot be reached: {exc}") from exc
                    log.warning("reconnecting to %s: %s", self.path, exc)
                    self._conn = _connect(self.url, "search")
        raise AssertionError("unreachable")


class PgWriter:
    """Adds and removes documents inside an ingest run's transaction; from ``PgIndex.writer()``."""

    def __init__(self, conn: Any, config: IngestConfig) -> None:
        self._conn = conn
        self.config = config
        self.changed = False

    def sha256_of(self, source: str) -> str | None:
        row = self._conn.execute("SELECT sha256 FROM hybrid_documents WHERE source = %s", (source,)).fetchone()
        return row[0] if row else None

    def sources_with_sha(self, sha256: str) -> list[str]:
        rows = self._conn.execute("SELECT source FROM hybrid_documents WHERE sha256 = %s ORDER BY source COLLATE \"C\"", (sha256,))
        return [r[0] for r in rows]

    def sources(self) -> list[str]:
        return [d["source"] for d in pg_sql.documents(self._conn)]

    def remove(self, source: str) -> None:
        self._lengths(-pg_keyword.lengths(self._conn, source))
        self._conn.execute("DELETE FROM hybrid_chunks WHERE source = %s", (source,))
        self._conn.execute("DELETE FROM hybrid_documents WHERE source = %s", (source,))
        self.changed = True

    def _lengths(self, change: int) -> None:
        # The sum of the chunks' keyword lengths, for BM25's average length (ingest.pg_keyword).
        if change:
            stored = int(pg_sql.read_meta(self._conn).get("keyword_lengths", 0))
            pg_sql.set_meta(self._conn, keyword_lengths=max(0, stored + change))

    def put(
        self,
        source: str,
        sha256: str,
        pages: int,
        chunks: list[Chunk],
        vectors: np.ndarray,
        recorded: dict[str, Any] | None = None,
    ) -> None:
        """Store a document, replacing any earlier version of the same source.

        Args:
            recorded: the document's ``ingested_at``, ``chunk_size`` and ``chunk_overlap`` when
                it is copied from another index (``ingest.migrate``); else now and this run's.
        """
        self.remove(source)
        row = {"ingested_at": now(), "chunk_size": self.config.chunk_size, "chunk_overlap": self.config.chunk_overlap}
        row.update({key: value for key, value in (recorded or {}).items() if key in row})
        self._conn.execute(
            "INSERT INTO hybrid_documents (source, sha256, pages, chunks, ingested_at, chunk_size, chunk_overlap)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (source, sha256, pages, len(chunks), row["ingested_at"], row["chunk_size"], row["chunk_overlap"]),
        )
        with self._conn.cursor() as cursor, cursor.copy(
            "COPY hybrid_chunks (chunk_id, source, page, text, embedding) FROM STDIN"
        ) as copy:
            for chunk, vector in zip(chunks, vectors, strict=True):
                copy.write_row((chunk.chunk_id, chunk.source, chunk.page, chunk.text.replace("\x00", ""), pg_sql.vector_text(vector)))
        self._lengths(pg_keyword.index_document(self._conn, source))

    def other_chunking(self) -> int:
        return self._conn.execute(
            "SELECT count(*) FROM hybrid_documents WHERE chunk_size != %s OR chunk_overlap != %s",
            (self.config.chunk_size, self.config.chunk_overlap),
        ).fetchone()[0]


def read_meta(url: str) -> dict[str, Any]:
    """The manifest of the index at ``url``, without an embedder.

    Raises:
        IndexNotFoundError: the database holds no index.
    """
    conn = _connect(url, "search")
    try:
        meta = pg_sql.read_meta(conn)
        if not meta:
            raise IndexNotFoundError(f"no index in {pg_sql.display(url)}: run `hybrid ingest PATH --index URL` first")
        return build_manifest(meta, *pg_sql.counts(conn))
    finally:
        conn.close()


def _connect(url: str, purpose: str) -> Any:
    try:
        return pg_sql.connect(url, purpose=purpose)
    except IngestError as exc:
        raise IndexUnavailableError(str(exc)) from exc


def _is_pg_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("psycopg")


def _is_connection_error(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _average_length(conn: Any, total: int) -> float:
    """The chunks' average keyword length (distinct lexemes), from the sum the writer keeps."""
    row = conn.execute("SELECT value FROM hybrid_meta WHERE key = 'keyword_lengths'").fetchone()
    return float(row[0]) / total if row and total else 1.0


def _dense(conn: Any, vector: str, depth: int, total: int, where: str, args: list[object]) -> list[int]:
    if where or total <= EXACT_MAX:
        # Exact, as the embedded store is up to EXACT_MAX chunks: HNSW misses near-duplicate
        # pages (5 of 195 SEC questions got another top 5 at ef_search 100). Over the rows a
        # filter leaves it is exact at any size; the fence (OFFSET 0) keeps the HNSW index,
        # which would filter after finding its candidates, out of it.
        sql = (
            "SELECT id FROM (SELECT id, embedding <#> %s::vector AS distance FROM hybrid_chunks"
            + (f" WHERE {where}" if where else "")
            + " OFFSET 0) AS f ORDER BY distance, id DESC LIMIT %s"  # equal scores: the later chunk first, as FAISS
        )
        return [r[0] for r in conn.execute(sql, [vector, *args, depth])]
    # ef_search 200 found 0.972 of the exact top 10 at 1M vectors, as the embedded IVF does (bench/scale.py).
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(_MAX_EF_SEARCH, max(200, 4 * depth))),))
    rows = conn.execute("SELECT id FROM hybrid_chunks ORDER BY embedding <#> %s::vector LIMIT %s", (vector, depth))
    return [r[0] for r in rows]


def _candidates(conn: Any, word: str, sources: list[str] | None = None) -> list[tuple[str, str]]:
    """Rows (source, text) that may contain ``word``: by a phrase query on the full-text index,
    or by ILIKE for a word the index does not hold (a stop word); callers check the exact text."""
    _, like = db._whole_word(word)
    sql = (
        f"SELECT source, text FROM hybrid_chunks, phraseto_tsquery('{pg_sql.TS_CONFIG}', %s) AS q"
        " WHERE CASE WHEN numnode(q) > 0 THEN tsv @@ q ELSE text ILIKE %s END"
    )
    args: list[object] = [word, like]
    if sources is not None:
        sql += " AND source = ANY(%s)"
        args.append(sources)
    return conn.execute(sql, args).fetchall()


def _busy_message(conn: Any, where: str) -> str:
    holder = conn.execute(
        "SELECT a.application_name, a.backend_start FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        f" WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {_LOCK_CLASS}::oid AND l.objsubid = 2 LIMIT 1"
    ).fetchone()
    who = f" ({holder[0]}, started {holder[1]:%Y-%m-%d %H:%M:%S})" if holder and holder[0] else ""
    return f"index {where} is being written by another ingest{who}; wait for it to finish, or stop it, and run again"
