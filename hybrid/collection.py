"""The document collection: its index, the models that search it, ingest and search.

``Collection`` owns what retrieval needs under one ``Settings``: the embedder (the one the
index was built with, unless the user chose one), the index at ``settings.index_location`` (a
directory or a PostgreSQL URL), the optional cross-encoder, each loaded once and shared by every
request, and the checks on what a request may ask for (``hybrid.limits``). The ranking policy is ``hybrid.retrieval``'s.
``Pipeline`` composes it with the generators and the adapters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ingest
from hybrid import retrieval
from hybrid.config import Settings
from hybrid.errors import BadRequestError, leaf_errors
from hybrid.limits import K_MAX, K_MIN, MAX_QUESTION_CHARS


class Collection:
    """The index at ``settings.index_location`` and its models. Thread-safe.

    Args:
        embedder: an ``ingest.Embedder`` to use instead of loading ``settings.embedder``.
    """

    def __init__(self, settings: Settings, *, embedder: ingest.Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._index: ingest.Index | ingest.PgIndex | None = None
        self._reranker: ingest.Reranker | None = None
        self._lock = threading.Lock()  # guards the index, held only briefly
        self._load_lock = threading.Lock()  # one reranker load at a time
        # The embedder's own: it may load inside Index.open, which runs under self._lock.
        self._embedder_lock = threading.Lock()

    @property
    def embedder(self) -> ingest.Embedder:
        """The embedder: the one the existing index was built with, unless the user chose one."""
        if self._embedder is None:
            with self._embedder_lock, leaf_errors():
                if self._embedder is None:
                    self._embedder = ingest.load_embedder(
                        self._embedder_spec(),
                        batch_size=self.settings.ingest.batch_size,
                        allow_download=self.settings.allow_download,
                        dtype=self.settings.ingest.embed_dtype,
                    )
        return self._embedder

    @property
    def loaded_embedder(self) -> ingest.Embedder | None:
        """The embedder if it is loaded (or was given), else None; loads nothing."""
        return self._embedder

    def _embedder_spec(self) -> str:
        if "embedder" in self.settings.model_fields_set:
            return self.settings.embedder
        try:
            return ingest.read_manifest(self.settings.index_location)["embedder"]
        except ingest.IndexNotFoundError:
            return self.settings.embedder

    def _lazy_embedder(self) -> ingest.Embedder:
        """The embedder to open the index with, its model loaded only once a text needs embedding.

        When the index records the embedder that would be loaded, its name and size come from
        there: opening the index, listing its documents or an ingest that finds nothing changed
        then never load the model.
        """
        if self._embedder is not None:
            return self._embedder
        with leaf_errors():
            spec = self._embedder_spec()
            try:
                recorded = ingest.read_manifest(self.settings.index_location)
            except ingest.IndexNotFoundError:
                recorded = {}
        name, dim = recorded.get("embedder"), recorded.get("dim")
        if name == ingest.embedder_name(spec) and isinstance(dim, int):
            return ingest.LazyEmbedder(lambda: self.embedder, name=name, dim=dim)
        return ingest.LazyEmbedder(lambda: self.embedder)  # a new index, or another embedder

    def index(self) -> ingest.Index | ingest.PgIndex:
        """The index, opened once (it sees later ingests by itself)."""
        if self._index is None:
            embedder = self._lazy_embedder()
            with self._lock, leaf_errors():
                if self._index is None:
                    self._index = ingest.open_index(self.settings.index_location, embedder)
        return self._index

    def reload(self) -> int:
        """Bring the open index up to date with its store now; returns the number of chunks."""
        with leaf_errors():
            return len(self.index())

    def reranker(self) -> ingest.Reranker | None:
        """The cross-encoder named by ``settings.search.reranker``, loaded once; None if unset."""
        spec = self.settings.search.reranker
        if not spec:
            return None
        if self._reranker is None:
            with self._load_lock, leaf_errors():
                if self._reranker is None:
                    self._reranker = ingest.Reranker(spec, allow_download=self.settings.allow_download)
        return self._reranker

    def close(self) -> None:
        """Close the index (the models stay loaded)."""
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def ingest(self, paths: Sequence[str | Path], **options: Any) -> ingest.IngestReport:
        """Add, update (and with ``prune`` remove) PDFs; incremental by content hash. ``options``
        are ``ingest.ingest_paths``'s: ``prune``, ``progress``, ``on_progress`` (``Pipeline.ingest``).
        The embedder's model loads only if a file needs embedding; an open index notices the new
        generation and reloads by itself."""
        with leaf_errors():
            return ingest.ingest_paths(paths, self.settings.index_location, self._lazy_embedder(), self.settings.ingest, **options)

    def migrate(self, target: str, progress: Callable[[str], None] | None = None) -> ingest.MigrateReport:
        """Copy the embedded index at ``settings.index_dir`` into the PostgreSQL index at ``target``
        (``ingest.migrate_index``: the stored vectors, nothing embedded again)."""
        if not ingest.is_postgres(target):
            raise BadRequestError(f"migrate copies into PostgreSQL: give a postgresql:// URL, not {target!r}")
        with leaf_errors():
            return ingest.migrate_index(self.settings.index_dir, target, progress=progress)

    def documents(self) -> list[dict]:
        """The stored documents: ``[{"source", "sha256", "pages", "chunks"}]``, by source."""
        with leaf_errors():
            return self.index().documents()

    def remove(self, paths: Sequence[str | Path]) -> list[str]:
        """Remove the documents at ``paths`` (files or folders); returns their sources."""
        with leaf_errors():
            return ingest.remove_documents(self.index(), paths)

    def search(self, query: str, *, k: int | None = None, **filters: Any) -> list[ingest.Hit]:
        """The ``k`` passages that best match ``query``, best first; ``filters`` are
        ``hybrid.retrieval.search``'s ``sources`` and ``pages`` (``Pipeline.search``)."""
        query = checked_text(query, "query")
        k = checked_k(self.settings.k if k is None else k)
        reranker = self.reranker()
        with leaf_errors():
            return retrieval.search(self.index(), query, k=k, config=self.settings.search, reranker=reranker, **filters)


def checked_text(text: str, what: str) -> str:
    """``text`` stripped, or a ``BadRequestError`` when it is empty or longer than the limit."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequestError(f"the {what} is empty; pass some text to search for")
    if len(text) > MAX_QUESTION_CHARS:
        raise BadRequestError(f"the {what} has {len(text)} characters; the limit is {MAX_QUESTION_CHARS}")
    return text.strip()


def checked_k(k: int) -> int:
    """``k``, or a ``BadRequestError`` when it is not a whole number in ``K_MIN..K_MAX``."""
    if not isinstance(k, int) or isinstance(k, bool) or not K_MIN <= k <= K_MAX:
        raise BadRequestError(f"k must be a whole number from {K_MIN} to {K_MAX}, got {k!r}")
    return k


__all__ = ["Collection", "checked_k", "checked_text"]
