"""Retrieval: the passages that best match a query, documents the query names first.

The index (``ingest.Index``) ranks passages by embeddings and BM25, fused (``settings.search``),
and an optional cross-encoder reorders the best. Then passages from documents whose file name
the query names come first ("in Q3 2022": "2022 Q3 AAPL.pdf", ``guidance.documents_named``),
then those from documents *about* the names the query asks for ("Apple's gross margin":
documents that mention Apple at least ``ABOUT_MENTIONS`` times), keeping rank order within
each group. Filings, reports and manuals seldom repeat the company, period or subject in every
passage, so similarity alone mixes documents up (measured in docs/concepts/pipeline.md).
Scores stay cosine similarities. Whether the passages are good enough to answer from is
``guidance.decide``'s call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hybrid import guidance

if TYPE_CHECKING:
    import ingest

# Candidates fetched per requested passage before documents about the query's names go first.
CANDIDATES_PER_HIT = 8
# Mentions that make a document *about* a name (a passing mention of a competitor is not).
ABOUT_MENTIONS = 3


def search(
    index: ingest.Index,
    query: str,
    *,
    k: int,
    config: ingest.SearchConfig,
    reranker: ingest.Reranker | None = None,
    sources: Sequence[str] | None = None,
    pages: tuple[int | None, int | None] | None = None,
) -> list[ingest.Hit]:
    """The ``k`` passages of ``index`` that best match ``query``, best first (see the module)."""
    names = guidance.names_in(query)
    titled = guidance.documents_named(query, [d["source"] for d in index.documents()])
    regroup = bool(names) or any(titled.values())
    depth = max(k * CANDIDATES_PER_HIT if regroup else k, config.rerank_depth if reranker else 0)
    hits = index.search(query, k=depth, sources=sources, pages=pages, mode=config.mode, candidates=config.candidates,
                        keyword_weight=config.keyword_weight)
    if reranker is not None:
        hits = reranker.rerank(query, hits[: config.rerank_depth]) + hits[config.rerank_depth :]
    if regroup and hits:
        found = [h.source for h in hits]
        counts = [index.mention_counts(name, found) for name in names]
        about = {s: sum(c[s] >= ABOUT_MENTIONS for c in counts) for s in found}
        rank = {h.chunk_id: i for i, h in enumerate(hits)}
        hits = sorted(hits, key=lambda h: (-titled.get(h.source, 0), -about[h.source], rank[h.chunk_id]))
    return hits[:k]
