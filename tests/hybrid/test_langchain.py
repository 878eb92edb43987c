"""The LangChain retriever: a real BaseRetriever that works inside a LangChain chain."""

from __future__ import annotations

from pathlib import Path

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda

from hybrid.langchain import HybridRetriever


def test_retriever_returns_documents_with_source_and_page(pipeline) -> None:
    retriever = HybridRetriever(pipeline=pipeline, k=2)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("adverse events safety desk")
    assert len(docs) == 2
    top = docs[0]
    assert Path(top.metadata["source"]).name == "safety.pdf" and top.metadata["page"] == 1
    assert top.id == top.metadata["chunk_id"] and "safety desk" in top.page_content
    assert isinstance(top.metadata["score"], float)


def test_retriever_filters_and_composes_in_a_chain(pipeline) -> None:
    retriever = HybridRetriever(pipeline=pipeline, k=5, sources=["*engine*"], pages=(2, 3))
    chain = retriever | RunnableLambda(lambda docs: sorted({(Path(d.metadata["source"]).name, d.metadata["page"]) for d in docs}))
    assert chain.invoke("fuel starvation landed in a field") == [("engine report.pdf", 2), ("engine report.pdf", 3)]


def test_from_index_reads_settings(home, pipeline) -> None:
    retriever = HybridRetriever.from_index(pipeline.settings.index_dir, k=1)
    assert retriever.pipeline.settings.index_dir == pipeline.settings.index_dir


def test_from_index_takes_a_postgres_url(home, corpus_dir, postgres_url) -> None:
    assert HybridRetriever.from_index(postgres_url).pipeline.settings.store == postgres_url
    from hybrid import Pipeline, load_settings

    Pipeline(load_settings(store=postgres_url)).ingest([corpus_dir])
    retriever = HybridRetriever.from_index(postgres_url, k=5, sources=["*engine*"], pages=(2, 3))
    docs = retriever.invoke("fuel starvation landed in a field")
    assert sorted({(Path(d.metadata["source"]).name, d.metadata["page"]) for d in docs}) == [("engine report.pdf", 2), ("engine report.pdf", 3)]
