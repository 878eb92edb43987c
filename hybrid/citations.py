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
from dataclasses import dataclass, field

from hybrid.grounding import (
    MIN_CLAIM_WORDS,  # noqa: F401 - hybrid.context imports it from here
    MIN_SUPPORT,
    Evidence,
    SentenceCheck,
    about_sources,
    all_supported,
    best_score,
    house_key,
    is_claim,
    score,
)
from hybrid.records import Citation
from hybrid.text import content_words, sentence_spans

if TYPE_CHECKING:
    from hybrid.support import SupportCheck
    from ingest import Hit

QUOTE_CHARS = 300

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_EMPTY_MARKER = re.compile(r"\s*\[\s*(?:source|n)?\s*\]", re.IGNORECASE)
# Words that only lead up to a marker: "cited at [2]", "(see [1])", "according to [3]".
_POINTERS = r"(?:cited|quoted|stated|shown|given|found|listed|see|cf\.?|per|as|in|at|on|from|by|to|according|source|sources|page|reference)"
_DANGLING_BEFORE_MARKER = re.compile(
    rf"(?:(?:\s*,)?(?:\s+{_POINTERS})+|\s+[-\u2013\u2014:])(?=\s*\[(?:\d+(?:\s*,\s*\d+)*|\s*(?:source|n)?\s*)\])",
    re.IGNORECASE,
)
_BARE_ENUMERATOR = re.compile(r"\d{1,2}[.)]|[-*\u2022]")
_CLOSING = ".!?:;)]\"'\u201d"
_EMPTY_PARENS = re.compile(r"\s*\(\s*(?:see|cf\.?|source|sources|page)?\s*\)", re.IGNORECASE)
# The same left at the end of a sentence without a marker: "... a summary cited at."
_DANGLING_END = re.compile(r"(?:\s*,)?\s+(?:cited|quoted|as stated|as shown|see)(?:\s+(?:at|in|on|from|by|source|sources|page))*\s*([.!?:;]?)$", re.IGNORECASE)


@dataclass
class CitedText:
    """The answer with renumbered markers, its citations, and the grounding check of each sentence.

    ``supported_sentences`` counts the claims a passage supports (0 sends the pipeline to its
    extractive fallback).
    """

    text: str
    citations: list[Citation]
    grounded: bool
    supported_sentences: int
    sentences: list[SentenceCheck] = field(default_factory=list)


def _best_hit(sentence: str, evidence: Sequence[Evidence]) -> tuple[int | None, float]:
    scores = [score(sentence, e) for e in evidence]
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


def cite(
    answer: str,
    hits: Sequence[Hit],
    *,
    drop_unsupported: bool = True,
    house: frozenset[str] = frozenset(),
    check: SupportCheck | None = None,
    labels: Sequence[str] = (),
) -> CitedText:
    """Resolve, repair and renumber the citations of ``answer`` and check each sentence's grounding.

    Args:
        answer: generated text, possibly with ``[n]`` markers numbered as in the prompt.
        hits: the passages shown to the model, in prompt order (marker ``[i]`` is ``hits[i-1]``).
        drop_unsupported: leave claims no passage supports out of the text (the default);
            False keeps them, without a marker, and flags them in ``sentences``.
        house: the adapter's boilerplate (``hybrid.grounding.house_sentences``): such a
            sentence is kept as written, without a citation, and is not a claim.
        check: the strict support check (``hybrid.support``) a cited passage must pass as well
            as the word-overlap score; None for word overlap alone.
        labels: the house's paragraph labels ("Answer:"), which are not part of the claim.

    Returns:
        CitedText whose markers number the citations 1..m, with one ``SentenceCheck`` per
        sentence; ``grounded`` says whether something is cited and every claim left in the
        text is supported by a passage it cites (see ``hybrid.grounding``).
    """
    evidence = [Evidence.of(h.text) for h in hits]

    flat = [" ".join(h.text.split()) for h in hits]

    def supports(claim: str, i: int) -> bool:
        if " ".join(claim.split()).rstrip(".") in flat[i]:
            return True  # the evidence's own words (a quote)
        if score(claim, evidence[i]) < MIN_SUPPORT:
            return False
        return check is None or check.supports(claim, [hits[i].text]).supported

    order: list[int] = []  # hit indexes in order of first citation
    claims: dict[int, list[str]] = {}
    pieces: list[str] = []
    # (sentence, hit indexes it cites, support, supported, claim, kept): numbered once all are known.
    rows: list[tuple[str, list[int], float, bool, bool, bool]] = []
    previous_end = 0
    spans = sentence_spans(answer)
    enumerator, enumerator_gap = "", ""  # a list item's "2." stands apart from its sentence
    seen: set[str] = set()
    for number, (a, b) in enumerate(spans, start=1):
        raw = answer[a:b]
        gap, previous_end = answer[previous_end:a], b  # keep line breaks: house styles use lists
        if _BARE_ENUMERATOR.fullmatch(raw):
            enumerator, enumerator_gap = f"{raw} ", gap
            continue
        if enumerator:
            gap = enumerator_gap
        marked = [int(n) - 1 for m in _MARKER.finditer(raw) for n in m.group(1).split(",")]
        sentence = _without_markers(raw)
        if not sentence:
            continue
        boilerplate = house_key(sentence) in house
        claimed = _unlabelled(sentence, labels)
        claim = not boilerplate and (is_claim(claimed) or about_sources(claimed))
        valid: list[int] = []
        if not boilerplate and not about_sources(claimed):  # "The sources I provided were ..." is never a fact
            valid = [i for i in dict.fromkeys(marked) if 0 <= i < len(hits)]
            valid = [i for i in valid if supports(claimed, i)]
            if not valid and claim:
                best, _ = _best_hit(claimed, evidence)
                if best is not None and supports(claimed, best):
                    valid = [best]
        support = max((score(claimed, evidence[i]) for i in valid), default=best_score(claimed, evidence))
        supported = bool(valid) or not claim
        # A small model in a loop repeats a line ("Apple Inc. | Q1 2023 Form 10-Q | 7"): once is enough.
        repeated = claim and sentence in seen
        seen.add(sentence)
        # The generation stopped at its token limit mid-sentence: a fragment without a claim goes.
        cut = number == len(spans) and not claim and sentence[-1] not in _CLOSING
        supported = supported and not cut
        kept = (supported or (not drop_unsupported and not cut)) and not repeated
        rows.append((sentence, valid, support, supported, claim, kept))
        prefix, enumerator = enumerator, ""
        if not kept:
            continue
        for i in valid:
            if i not in claims:
                order.append(i)
                claims[i] = []
            claims[i].append(sentence)
        numbers = "".join(f"[{order.index(i) + 1}]" for i in valid)
        if pieces:
            pieces.append("\n" * min(gap.count("\n"), 2) or " ")
        pieces.append(prefix + _attach(sentence, numbers))
    citations = [
        Citation(n=n, source=hits[i].source, page=hits[i].page, chunk_id=hits[i].chunk_id, quote=_quote(hits[i], claims[i]))
        for n, i in enumerate(order, start=1)
    ]
    sentences = [
        SentenceCheck(
            text=_attach(text, "".join(f"[{order.index(i) + 1}]" for i in valid)) if kept else text,
            cited=tuple(order.index(i) + 1 for i in valid) if kept else (),
            support=support,
            supported=supported,
            claim=claim,
            kept=kept,
        )
        for text, valid, support, supported, claim, kept in rows
    ]
    supported_claims = sum(1 for s in sentences if s.claim and s.supported)
    grounded = bool(citations) and all_supported(sentences)
    return CitedText("".join(pieces), citations, grounded, supported_claims, sentences)


def _unlabelled(sentence: str, labels: Sequence[str]) -> str:
    """The sentence without a house label in front ("Answer: Refunds take 5 days." -> "Refunds take 5 days.")."""
    for label in labels:
        if sentence.startswith(label):
            return sentence[len(label) :].strip()
    return sentence


def _without_markers(raw: str) -> str:
    """The sentence without its markers, and without the words that only pointed at them.

    "This is a summary cited at [2]." must not become "This is a summary cited at."
    """
    text = _DANGLING_BEFORE_MARKER.sub("", raw)
    text = _EMPTY_MARKER.sub("", _MARKER.sub("", text))
    text = _EMPTY_PARENS.sub("", text)
    return _DANGLING_END.sub(r"\1", text).strip()


def _attach(sentence: str, markers: str) -> str:
    """Place markers before the sentence's final punctuation: ``... in 2021 [1].``"""
    if not markers:
        return sentence
    if sentence[-1] in ".!?:;":
        return f"{sentence[:-1].rstrip()} {markers}{sentence[-1]}"
    return f"{sentence} {markers}"
