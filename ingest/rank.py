"""Combining rankings and applying search filters."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import PurePath

from ingest.config import SEARCH_MODES
from ingest.errors import IngestError, SearchFilterError

# The constant of reciprocal rank fusion (Cormack et al., 2009): a hit at rank r scores
# 1 / (RRF_K + r), so the first few ranks of either list matter and the tail fades smoothly.
RRF_K = 60
# The largest page number a filter may name: far beyond any real PDF (ingest.max_pages is 5,000
# by default), and far below the 2**63 at which SQLite's integers end.
MAX_PAGE = 1_000_000


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], weights: Sequence[float] | None = None, k: int = RRF_K
) -> list[int]:
    """Merge best-first lists of ids into one, best first.

    An id scores the sum of weight / (k + rank) over the lists it appears in (rank from 1;
    weights default to 1). Ties keep the order of first appearance, earlier lists first.
    """
    weights = [1.0] * len(rankings) if weights is None else weights
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores, key=lambda item: -scores[item])


def match_sources(patterns: Sequence[str], sources: Sequence[str]) -> list[str]:
    """The stored sources that one of `patterns` names.

    A pattern names a source when it equals the full path or the file name, or matches either
    as a glob ("*AAPL*", "reports/2023-*.pdf"). Matching ignores letter case.
    """
    found = []
    lowered = [p.lower() for p in patterns if p]
    for source in sources:
        path, name = source.lower(), PurePath(source).name.lower()
        if any(p in (path, name) or fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in lowered):
            found.append(source)
    return found


def check_pages(pages: tuple[int | None, int | None] | None) -> tuple[int | None, int | None]:
    """Validate a (first, last) page range; None means no range.

    Raises:
        SearchFilterError: a page below 1 or above ``MAX_PAGE``, or first after last.
    """
    if pages is None:
        return (None, None)
    first, last = pages
    for page in (first, last):
        if page is not None and (isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE):
            raise SearchFilterError(f"pages are numbered from 1 to at most {MAX_PAGE:,}; got the range {first}-{last}")
    if first is not None and last is not None and first > last:
        raise SearchFilterError(f"the page range {first}-{last} is empty: {first} is after {last}")
    return (first, last)


def check_search(k: int, candidates: int, mode: str) -> None:
    """Refuse a search that asks for nothing or for an unknown mode (both stores).

    Raises:
        IngestError: k or candidates below 1, or an unknown mode.
    """
    if k < 1:
        raise IngestError(f"k must be at least 1, got {k}")
    if candidates < 1:
        raise IngestError(f"candidates must be at least 1, got {candidates}")
    if mode not in SEARCH_MODES:
        raise IngestError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")


def require_sources(patterns: Sequence[str], sources: Sequence[str]) -> list[str]:
    """``match_sources``, refusing a filter that names no stored document.

    Raises:
        SearchFilterError: no stored source matches; the message says what to give instead.
    """
    found = match_sources(patterns, sources)
    if not found:
        raise SearchFilterError(
            f"no indexed document matches the source filter {', '.join(map(repr, patterns))}; "
            "give a path, a file name or a glob such as '*report*' "
            "(`hybrid docs list` shows what is indexed)"
        )
    return found
