"""Turn a generated answer into cited text: resolve ``[n]`` markers, repair them, quote sources.

Small models cite poorly: they omit markers, cite a passage that does not say what the sentence
says, or invent numbers. This module keeps only markers that point at retrieved passages,
re-points a marker to the passage that actually supports its sentence, attaches a marker where
the model left none but a passage clearly supports the sentence, and numbers the cited sources
1..m in order of first use. It never cites a passage that was not retrieved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hybrid.records import Citation
from hybrid.text import content_words, sentence_spans, support

if TYPE_CHECKING:
    from ingest import Hit

# A sentence counts as supported by a passage when this share of its content words is in it.
MIN_SUPPORT = 0.5
# Sentences with fewer content words than this ("Yes.", "In short:") need no citation.
MIN_CLAIM_WORDS = 3
QUOTE_CHARS = 300

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_EMPTY_MARKER = re.compile(r"\s*\[\s*(?:source|n)?\s*\]", re.IGNORECASE)


@dataclass
class CitedText:
    """The answer with renumbered markers, its citations, and whether every claim is supported."""

    text: str
    citations: list[Citation]
    grounded: bool
    supported_sentences: int


def _best_hit(sentence: str, hit_words: Sequence[set[str]]) -> tuple[int | None, float]:
    scores = [support(sentence, words) for words in hit_words]
    if not scores:
        return None, 0.0
    best = max(range(len(scores)), key=scores.__getitem__)
    return best, scores[best]


def _quote(hit: Hit, claims: Sequence[str]) -> str:
    """The sentence of the passage that best matches the claims citing it (verbatim)."""
    claim_words = set().union(*(content_words(c) for c in claims)) if claims else set()
    best, best_score = None, (-1, False)
    for a, b in sentence_spans(hit.text, wrapped=True):
        overlap = len(content_words(hit.text[a:b]) & claim_words)
        # On a tie a full sentence beats a heading (chunks repeat their section's heading,
        # and a heading restates the question rather than answering it).
        score = (overlap, hit.text[b - 1] in ".!?:;)\"'”")
        if score > best_score:
            best, best_score = (a, b), score
    if best is None:
        return hit.text[:QUOTE_CHARS]
    a, b = best
    return hit.text[a : min(b, a + QUOTE_CHARS)]


def cite(answer: str, hits: Sequence[Hit]) -> CitedText:
    """Resolve, repair and renumber the citations of ``answer`` against the retrieved ``hits``.

    Args:
        answer: generated text, possibly with ``[n]`` markers numbered as in the prompt.
        hits: the passages shown to the model, in prompt order (marker ``[i]`` is ``hits[i-1]``).

    Returns:
        CitedText whose markers number the citations 1..m and whose ``grounded`` says whether
        every sentence that makes a claim is supported by a passage it cites.
    """
    hit_words = [content_words(h.text) for h in hits]
    order: list[int] = []  # hit indexes in order of first citation
    claims: dict[int, list[str]] = {}
    pieces: list[str] = []
    unsupported = supported = 0
    previous_end = 0
    for a, b in sentence_spans(answer):
        raw = answer[a:b]
        gap, previous_end = answer[previous_end:a], b  # keep line breaks: house styles use lists
        marked = [int(n) - 1 for m in _MARKER.finditer(raw) for n in m.group(1).split(",")]
        sentence = _EMPTY_MARKER.sub("", _MARKER.sub("", raw)).strip()
        if not sentence:
            continue
        if pieces:
            pieces.append("\n" * min(gap.count("\n"), 2) or " ")
        valid = [i for i in dict.fromkeys(marked) if 0 <= i < len(hits)]
        valid = [i for i in valid if support(sentence, hit_words[i]) >= MIN_SUPPORT]
        if not valid and len(content_words(sentence)) >= MIN_CLAIM_WORDS:
            best, score = _best_hit(sentence, hit_words)
            if best is not None and score >= MIN_SUPPORT:
                valid = [best]
        if len(content_words(sentence)) >= MIN_CLAIM_WORDS:
            supported += bool(valid)
            unsupported += not valid
        for i in valid:
            if i not in claims:
                order.append(i)
                claims[i] = []
            claims[i].append(sentence)
        numbers = "".join(f"[{order.index(i) + 1}]" for i in valid)
        pieces.append(_attach(sentence, numbers))
    citations = [
        Citation(n=n, source=hits[i].source, page=hits[i].page, chunk_id=hits[i].chunk_id, quote=_quote(hits[i], claims[i]))
        for n, i in enumerate(order, start=1)
    ]
    grounded = bool(citations) and unsupported == 0
    return CitedText("".join(pieces), citations, grounded, supported)


def _attach(sentence: str, markers: str) -> str:
    """Place markers before the sentence's final punctuation: ``... in 2021 [1].``"""
    if not markers:
        return sentence
    if sentence[-1] in ".!?:;":
        return f"{sentence[:-1].rstrip()} {markers}{sentence[-1]}"
    return f"{sentence} {markers}"
