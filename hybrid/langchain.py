"""Our index as a LangChain retriever, so LangChain chains can use it like any other.

    from hybrid.langchain import HybridRetriever

    retriever = HybridRetriever.from_index("my-index", k=4)
    docs = retriever.invoke("What caused the engine failure?")
    docs[0].metadata  # {"source": "/abs/report.pdf", "page": 3, "chunk_id": ..., "score": 0.62}

Retrieval is the same as `hybrid search` (dense + BM25, filters, the optional reranker).
Unlike LangChain's PyPDFLoader, whose ``page`` is 0-based, ``page`` here is 1-based, as a PDF
viewer and our citations number pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
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
        """A retriever over the index at `index` (default: settings from hybrid.toml/HYBRID_*)."""
        return cls(pipeline=Pipeline(load_settings(index=index)), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.pipeline.search(query, k=self.k, sources=self.sources, pages=self.pages)
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
