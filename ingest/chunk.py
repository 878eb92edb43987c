"""Cut pages into overlapping chunks; a chunk never spans two pages, so every hit has one page."""

from __future__ import annotations

from collections.abc import Sequence

from ingest.config import IngestConfig
from ingest.records import Chunk, Page
from ingest.structure import chunk_structured


def chunk_pages(pages: Sequence[Page], sha256: str, config: IngestConfig) -> list[Chunk]:
    """Split each page's text separately, along its headings and tables unless configured
    otherwise (`IngestConfig.chunker`; see `ingest.structure`).

    Args:
        pages: the pages of one document.
        sha256: hex digest of the document's bytes; its first 12 digits prefix each chunk id, so
            ids are the same every time the same file is ingested with the same settings.
        config: chunk size and overlap, in characters.

    Returns:
        Chunks in page order, ids "<sha256[:12]>:p<page>:c<i>" with i counted per page.
    """
    # Imported here: langchain's splitter pulls in langchain-core, which an ingest that finds
    # nothing changed never needs.
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap
    )
    prefix = sha256[:12]
    chunks = []
    for page in pages:
        if config.chunker == "structure":
            pieces = chunk_structured(
                page.text, config.chunk_size, config.chunk_overlap, splitter.split_text
            )
        else:
            pieces = [p.strip() for p in splitter.split_text(page.text)]
        for i, text in enumerate(p for p in pieces if p):
            chunks.append(
                Chunk(
                    chunk_id=f"{prefix}:p{page.page}:c{i}",
                    source=page.source,
                    page=page.page,
                    text=text,
                )
            )
    return chunks
