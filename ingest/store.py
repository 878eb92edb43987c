"""An index on disk: one directory holding `manifest.json`, `store.sqlite` and `vectors.faiss`."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ingest import db, keyword
from ingest.config import IngestConfig, SearchConfig
from ingest.embed import Embedder, embed_texts
from ingest.errors import IndexNotFoundError, IngestError
from ingest.lock import writer_lock
from ingest.manifest import (
    MANIFEST_FILE,
    build_manifest,
    check_meta,
    initial_meta,
    now,
    write_manifest,
)
from ingest.rank import check_pages, check_search, reciprocal_rank_fusion, require_sources
from ingest.records import Chunk, Hit
from ingest.vectors import VectorIndex
from ingest.writer import IndexWriter

log = logging.getLogger(__name__)

STORE_FILE = "store.sqlite"
# Hits read from each ranking before fusing, and BM25's weight against the dense ranking's 1:
# SearchConfig's defaults (its candidates and keyword_weight).
DEFAULT_CANDIDATES = SearchConfig.candidates
DEFAULT_KEYWORD_WEIGHT = SearchConfig.keyword_weight


class Index:
    """Dense retrieval over the chunks of ingested PDFs.

    Safe to share between threads. Each search checks the store's generation, so an index
    open in a server sees what another process ingested since.
    """

    def __init__(self, path: Path, embedder: Embedder, conn: sqlite3.Connection) -> None:
        # Use Index.open(); this only wires the parts together.
        self.path = path
        self.embedder = embedder
        self._conn = conn
        self._lock = threading.RLock()
        self._meta: dict[str, Any] = {}
        self._counts = (0, 0)
        self._generation = -1
        self._vectors = VectorIndex(embedder.dim)

    @classmethod
    def open(cls, path: str | Path, embedder: Embedder, *, create: bool = False) -> Index:
        """Open the index at `path`, creating an empty one if asked.

        Args:
            path: the index directory.
            embedder: must be the embedder the index was built with (same name and dim).
            create: make an empty index when there is none.

        Raises:
            IndexNotFoundError: no index at `path` and `create` is False.
            IndexMismatchError: the index was built with another embedder.
            IngestError: the store is unreadable or of an unknown format.
        """
        path = Path(path).expanduser().resolve()
        store = path / STORE_FILE
        exists = store.is_file()
        if not exists and not create:
            raise IndexNotFoundError(
                f"no index at {path}: run `hybrid ingest PATH --index {path}` first"
            )
        # Asked before anything is written or locked: an embedder that loads its model on
        # first use (LazyEmbedder) may take seconds here, or fail.
        name, dim = embedder.name, embedder.dim
        if not exists:
            path.mkdir(parents=True, exist_ok=True)
        try:
            conn = db.connect(store)
            # Only a new store needs the write: an existing one must open even while an
            # ingest holds SQLite's write lock, so that ingest's writer lock can refuse us.
            if create and not db.read_meta(conn):
                conn.execute("BEGIN IMMEDIATE")
                db.create_schema(conn, initial_meta(name, dim))
                conn.execute("COMMIT")
            meta = db.read_meta(conn)
        except sqlite3.Error as exc:
            raise IngestError(f"cannot open index store {store}: {exc}") from exc
        try:
            check_meta(path, meta, name, dim)
        except IngestError:
            conn.close()
            raise
        index = cls(path, embedder, conn)
        with index._lock:
            index._sync()
            if not (path / MANIFEST_FILE).is_file():
                index._write_manifest()
        return index

    @property
    def manifest(self) -> dict[str, Any]:
        """What built the index and how big it is (see `ingest.manifest`)."""
        with self._lock:
            return build_manifest(self._meta, *self._counts)

    def __len__(self) -> int:
        with self._lock:
            self._sync()
            return self._counts[1]

    def documents(self) -> list[dict[str, Any]]:
        """Stored documents: [{"source", "sha256", "pages", "chunks"}], sorted by source."""
        with self._lock:
            return db.documents(self._conn)

    def chunk(self, chunk_id: str) -> Chunk | None:
        with self._lock:
            return db.chunk_by_id(self._conn, chunk_id)

    def mentions(self, word: str) -> bool:
        """Whether any stored chunk contains ``word`` as a whole word (case-insensitive)."""
        with self._lock:
            return db.mentions(self._conn, word)

    def mention_counts(self, word: str, sources: Sequence[str]) -> dict[str, int]:
        """How often each document in ``sources`` mentions ``word`` (whole word, any case)."""
        with self._lock:
            return db.mention_counts(self._conn, word, sources)

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        sources: Sequence[str] | None = None,
        pages: tuple[int | None, int | None] | None = None,
        mode: str = "hybrid",
        candidates: int = DEFAULT_CANDIDATES,
        keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
    ) -> list[Hit]:
        """The k chunks that best answer `query`, best first.

        "hybrid" fuses by reciprocal rank fusion the dense (embedding) ranking, the BM25
        keyword ranking and, when the query has rare words (`keyword.rare_words`), a BM25
        ranking by those alone; "dense" and "keyword" use one ranking. Every hit's `score` is
        its cosine similarity to the query, whichever ranking found it.

        Args:
            sources: only documents matching one of these: a full path, a file name, or a glob
                (fnmatch) on either, e.g. "*2023 Q3 AAPL*".
            pages: only pages in (first, last), 1-based and inclusive; None leaves an end open.
            mode: "hybrid", "dense" or "keyword".
            candidates: how deep each ranking is read before fusing.
            keyword_weight: the BM25 ranking's weight in the fusion, the dense one's being 1.

        Raises:
            IngestError: k or candidates below 1, or an unknown mode.
            SearchFilterError: a bad page range, or `sources` matches no indexed document.
        """
        check_search(k, candidates, mode)
        pages = check_pages(pages)
        if len(self) == 0:
            return []
        vector = embed_texts(self.embedder, [query], batch_size=1)[0]
        depth = max(k, candidates)
        with self._lock:
            self._sync()
            matched = None if sources is None else self._match_sources(sources)
            filtered = matched is not None or pages != (None, None)
            rankings, weights = [], []
            if mode != "keyword":
                weights.append(1.0)
                if filtered:
                    rankings.append(self._filtered_dense(vector, depth, matched, pages))
                else:
                    rankings.append([row for row, _ in self._vectors.search(vector, depth)])
            if mode != "dense":
                weights.append(keyword_weight)
                rankings.append(keyword.search(self._conn, query, depth, sources=matched, pages=pages))
                rare = keyword.rare_words(self._conn, query, self._counts[1]) if mode == "hybrid" else []
                if rare:
                    # A third ranking, by the rare words alone, at the dense ranking's weight:
                    # an exact identifier or term outvotes a paraphrase that lacks it.
                    weights.append(1.0)
                    rankings.append(
                        keyword.search(self._conn, " ".join(rare), depth, sources=matched, pages=pages)
                    )
            rows = reciprocal_rank_fusion(rankings, weights)[:k]
            chunks = db.chunks_by_row_ids(self._conn, rows)
            stored = db.vectors_by_row_ids(self._conn, rows, self.embedder.dim)
        # A row can vanish if another process committed between the steps; skip it.
        return [
            Hit(c.source, c.page, c.chunk_id, float(stored[row] @ vector), c.text)
            for row in rows
            if (c := chunks.get(row)) is not None and row in stored
        ]

    def _match_sources(self, patterns: Sequence[str]) -> list[str]:
        return require_sources(patterns, [d["source"] for d in db.documents(self._conn)])

    def _filtered_dense(
        self,
        vector: np.ndarray,
        depth: int,
        sources: list[str] | None,
        pages: tuple[int | None, int | None],
    ) -> list[int]:
        # Exact search over the matching chunks' stored vectors: a filter usually leaves few.
        where, args = keyword.filter_sql(sources, pages)
        ids, vectors = db.filtered_vectors(self._conn, where, args, self.embedder.dim)
        if not len(ids):
            return []
        scores = vectors @ vector
        top = np.argsort(-scores, kind="stable")[:depth]
        return [int(ids[i]) for i in top]

    @contextmanager
    def writer(self, config: IngestConfig) -> Iterator[IndexWriter]:
        """A transaction for an ingest run: committed on normal exit, rolled back on error.

        Holds the index's writer lock (`ingest.lock`) throughout, including the FAISS update
        after the commit; searches never take it.

        Raises:
            IndexBusyError: another writer holds the lock; the message names its pid.
            IngestError: SQLite is busy all the same (no lock on this platform).
        """
        with self._lock, writer_lock(self.path):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise IngestError(
                    f"index {self.path} is busy ({exc}); another ingest is writing to it, "
                    "wait for it to finish and run again"
                ) from exc
            try:
                self._sync()  # patches below assume FAISS matches the current generation
                if not keyword.has_fts(self._conn):
                    keyword.create(self._conn)  # an index older than keyword search
                writer = IndexWriter(self._conn, config)
                yield writer
                generation = self._generation + 1
                if writer.changed:
                    db.set_meta(
                        self._conn,
                        generation=generation,
                        updated=now(),
                        chunker=config.chunker,
                        chunk_size=config.chunk_size,
                        chunk_overlap=config.chunk_overlap,
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if writer.changed:
                self._apply(writer, generation)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync(self) -> None:
        # Reload metadata and vectors if the store changed since we last looked. The reads
        # share one transaction so they see a single generation (WAL snapshot).
        own = self._conn.in_transaction
        if not own:
            self._conn.execute("BEGIN")
        try:
            generation = db.generation(self._conn)
            if generation == self._generation:
                return
            self._meta = db.read_meta(self._conn)
            self._counts = db.counts(self._conn)
            dim = self.embedder.dim
            vectors = VectorIndex.load(self.path, generation, self._counts[1], dim)
            if vectors is None:
                log.info("rebuilding %s from %s", self.path / "vectors.faiss", STORE_FILE)
                vectors = VectorIndex.rebuild(self._conn, dim)
                self._save_vectors(vectors, generation)
            self._vectors, self._generation = vectors, generation
        finally:
            if not own:
                self._conn.execute("COMMIT")

    def _apply(self, writer: IndexWriter, generation: int) -> None:
        # The commit is done; bring FAISS and the manifest up to it. A crash here leaves a
        # stale generation stamp, and the next open rebuilds FAISS from SQLite.
        self._vectors.remove(np.fromiter(writer.removed, dtype=np.int64))
        if writer.added:
            ids = np.fromiter(writer.added.keys(), dtype=np.int64)
            self._vectors.add(ids, np.stack(list(writer.added.values())))
        self._save_vectors(self._vectors, generation)
        self._generation = generation
        self._meta = db.read_meta(self._conn)
        self._counts = db.counts(self._conn)
        self._write_manifest()

    def _save_vectors(self, vectors: VectorIndex, generation: int) -> None:
        try:
            vectors.save(self.path, generation)
        except OSError as exc:  # read-only or full disk: searching from memory still works
            log.warning("cannot write the FAISS cache in %s: %s", self.path, exc)

    def _write_manifest(self) -> None:
        try:
            write_manifest(self.path, build_manifest(self._meta, *self._counts))
        except OSError as exc:
            log.warning("cannot write %s in %s: %s", MANIFEST_FILE, self.path, exc)

