"""Our index as a LangChain retriever, so LangChain chains can use it like any other.

    from hybrid.langchain import HybridRetriever

    retriever = HybridRetriever.from_index("my-index", k=4)
    docs = retriever.invoke("What caused the engine failure?")
    docs[0].metadata  # {"source": "/abs/report.pdf", "page": 3, "chunk_id": ..., "score": 0.62}
    retriever.invoke("What caused the engine failure?", k=1)  # k (sources, pages) for one call

Keyword arguments of ``invoke``/``ainvoke`` override the retriever's own ``k``, ``sources`` and
``pages`` for that call, as LangChain's standard retriever tests expect
(tests/hybrid/test_langchain_conformance.py runs them).

Retrieval is the same as `hybrid search` (dense + BM25, filters, the optional reranker).
Unlike LangChain's PyPDFLoader, whose ``page`` is 0-based, ``page`` here is 1-based, as a PDF
viewer and our citations number pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from hybrid.config import load_settings
from hybrid.limits import K_MAX, K_MIN
from hybrid.pipeline import Pipeline


class HybridRetriever(BaseRetriever):
    """A LangChain `BaseRetriever` over a hybrid index.

    Attributes:
        pipeline: the `hybrid.Pipeline` to search (its settings pick the index and models).
        k: passages per query.
        sources: only documents matching these paths, file names or globs.
        pages: only pages in this (first, last) range, 1-based; None leaves an end open.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Pipeline
    k: int = Field(5, ge=K_MIN, le=K_MAX)
    sources: list[str] | None = None
    pages: tuple[int | None, int | None] | None = None

    @classmethod
    def from_index(cls, index: str | Path | None = None, **kwargs: Any) -> HybridRetriever:
        """A retriever over the index at `index`, a directory or a PostgreSQL URL (default: settings from hybrid.toml/HYBRID_*)."""
        return cls(pipeline=Pipeline(load_settings(index=index)), **kwargs)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        sources: list[str] | None = None,
        pages: tuple[int | None, int | None] | None = None,
    ) -> list[Document]:
        """The passages for ``query``; ``k``, ``sources`` and ``pages`` override the
        retriever's own for this call (``retriever.invoke(query, k=1)``).

        LangChain hands ``invoke``'s extra keyword arguments to this method because its
        signature names them; an unknown one is a ``TypeError``, not silently ignored.
        """
        hits = self.pipeline.search(
            query,
            k=self.k if k is None else k,
            sources=self.sources if sources is None else sources,
            pages=self.pages if pages is None else pages,
        )
        return [
            Document(
                id=hit.chunk_id,
                page_content=hit.text,
                metadata={
                    "source": hit.source,
                    "page": hit.page,
                    "chunk_id": hit.chunk_id,
                    "score": hit.score,
                },
            )
            for hit in hits
        ]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        sources: list[str] | None = None,
        pages: tuple[int | None, int | None] | None = None,
    ) -> list[Document]:
        """`_get_relevant_documents` in a worker thread (search is blocking), with the same
        per-call overrides: LangChain's default would drop them."""
        return await run_in_executor(
            None, self._get_relevant_documents, query,
            run_manager=run_manager.get_sync(), k=k, sources=sources, pages=pages,
        )
