"""The reference pipeline a LangChain user writes, shared by the benchmarks.

`PyPDFLoader` -> `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)` ->
`HuggingFaceEmbeddings` (the MiniLM files of the embedded default, normalised) -> LangChain's
`FAISS`. Needs `pip install -e '.[bench]'` (langchain-community).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

CHUNK_SIZE, CHUNK_OVERLAP = 1000, 200


def embeddings():
    """`HuggingFaceEmbeddings` over the same model files our default embedder uses."""
    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        from langchain_community.embeddings import HuggingFaceEmbeddings

    from ingest.embed import _default_model_dir

    return HuggingFaceEmbeddings(
        model_name=str(_default_model_dir()),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True},
    )


def load_pages(files: Sequence[str | Path]) -> list:
    """LangChain documents, one per page (0-based ``page`` metadata), from `PyPDFLoader`.

    pypdf 7's default limits reject some real filings ("Reached maximum array element count"),
    which stops this pipeline outright; it gets the limits ours uses, and a file that still
    fails is skipped with a note, so the comparison is about speed and retrieval, not about
    which files could be read.
    """
    from langchain_community.document_loaders import PyPDFLoader

    from ingest.load import _parser_limits

    docs = []
    with _parser_limits():
        for path in files:
            try:
                docs += PyPDFLoader(str(path)).load()
            except Exception as exc:  # the reference has no per-file handling of its own
                print(f"reference: skipped {Path(path).name}: {exc}", file=sys.stderr)
    return docs


def split(docs: list) -> list:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    return splitter.split_documents(docs)
