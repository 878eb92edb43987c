"""The grounding check: how well each answer sentence is supported by the text it cites.

A sentence's support is the share of its content words found in the cited passage, and it is
zero when the sentence states a number the passage does not contain: "Revenue grew 15 percent"
shares every word with "Revenue grew 12 percent" and is still wrong. Sentences with fewer than
``MIN_CLAIM_WORDS`` content words ("Yes.", "In short:") make no claim and are not checked.

The citation step (``hybrid.citations``) applies the check to every sentence of a generated
answer; the ``style`` route (``hybrid.router``) applies it against the text the user supplied,
so a rewrite that adds a number or a name is caught the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hybrid.records import SentenceCheck
from hybrid.text import STOPWORDS, content_words, sentence_spans

# Share of a sentence's content words that its cited passage must contain. On the SEC 10-Q
# reference answers (bench/calibrate_grounding.py), 0.5 passes 56% of sentences against their
# own filing's passages and 22% against another company's, the best balanced accuracy of
# 0.3-0.7 (figures in docs/concepts/pipeline.md).
MIN_SUPPORT = 0.5
# Sentences with fewer content words than this ("Yes.", "In short:") need no citation.
MIN_CLAIM_WORDS = 3

# 3,000 / 12.5 / 2022 / $81 (the currency sign is not part of the number); "1." or "2)" leading
# a list item is an enumerator, not a number the sentence states.
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
ENUMERATOR = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*\u2022])\s+")
# Capitalised words inside a sentence: names, which a rewrite must not invent either. After a
# colon or semicolon a capital starts a clause ("Summary: The engine ..."), not a name.
_NAME = re.compile(r"(?<=[a-z0-9,)] )[A-Z][A-Za-z0-9&'-]+")


def numbers_in(text: str) -> set[str]:
    """The numbers ``text`` states, thousands separators and list enumerators removed.

    ``"1. Revenue was $82,959 million in 2022."`` -> ``{"82959", "2022"}``.
    """
    text = ENUMERATOR.sub("", text)
    return {m.group().replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}


def names_in(text: str) -> set[str]:
    """Capitalised words that do not start a sentence ("Apple", "Q3"), lower-cased."""
    found = {m.group().lower().removesuffix("'s") for m in _NAME.finditer(text)}
    return {name for name in found if name not in STOPWORDS}


@dataclass(frozen=True)
class Evidence:
    """A passage prepared for scoring: its content words and the numbers it states."""

    words: frozenset[str]
    numbers: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Evidence:
        return cls(frozenset(content_words(text)), frozenset(numbers_in(text)))


# Sentences about the sources rather than from them: "The sources I provided earlier were:",
# "This document titled ...". Small models write them when they cannot answer; they state no fact
# a passage could support, yet share the passages' words (titles), so overlap alone passes them.
_ABOUT_SOURCES = re.compile(
    r"\b(?:sources?|documents?|passages?|texts?)\s+(?:that\s+)?(?:I|you|we)\s+(?:have\s+)?(?:provided|gave|given|listed|used|cited)\b"
    r"|\bI\s+(?:have\s+)?(?:provided|used|cited)\b|\bdocument\s+titled\b"
    # "The evidence cites ...", "According to the evidence, ...": about the evidence, not from it.
    r"|\b(?:the|this)\s+evidence\s+(?:cites?|says|states|shows|mentions|provided|given|suggests|indicates)\b"
    r"|\bthe\s+(?:document|source|passage)\s+(?:with|that|which)\b"
    r"|^\W*(?:the\s+)?(?:sources?|documents?)\s+(?:were|are|is|was|include|includes|contain|contains)\b"
    r"|\b(?:sources?|documents?|passages?)\s+(?:mentioned|cited|listed|provided|given|quoted)\s+(?:earlier|above|below|in)\b"
    r"|\bbased\s+on\s+the\s+(?:sources?|documents?)\s+(?:provided|given|above)\b"
    # The prompt's source headers, "(2023 Q2 AAPL.pdf, page 3)", repeated as if they were facts.
    r"|\.pdf\b",
    re.IGNORECASE,
)


def about_sources(sentence: str) -> bool:
    """Whether ``sentence`` talks about the sources instead of stating what they say."""
    return bool(_ABOUT_SOURCES.search(sentence))


def is_claim(sentence: str) -> bool:
    """Whether ``sentence`` needs support: ``MIN_CLAIM_WORDS`` content words, or any number.

    "The answer is: 45,384" is short, and a fact all the same.
    """
    text = ENUMERATOR.sub("", sentence)
    return len(content_words(text)) >= MIN_CLAIM_WORDS or bool(numbers_in(text))


# A sentence in at least this share of an adapter's training replies (and at least
# HOUSE_MIN_REPLIES of them) is house boilerplate: a disclaimer, an opening, a sign-off.
HOUSE_SHARE = 0.2
HOUSE_MIN_REPLIES = 3


def house_key(sentence: str) -> str:
    """A sentence folded for comparison: lower case, single spaces, no closing punctuation."""
    return " ".join(sentence.lower().split()).rstrip(" .!?:;")


def house_sentences(replies: Sequence[str]) -> frozenset[str]:
    """The adapter's house boilerplate: sentences (as `house_key`) its training replies repeat.

    A sentence counts when at least `HOUSE_SHARE` of the replies (and `HOUSE_MIN_REPLIES`)
    contain it and it states no number: "This draft is for internal medical review and does not
    replace the approved product information." is house style the adapter was taught to write,
    not a claim about the documents, so the grounding check keeps it without a citation. A repeated sentence with a number ("Our line
    is open 24/7.") is a fact, and stays a claim that needs a passage.
    """
    counts: dict[str, int] = {}
    for reply in replies:
        for key in {house_key(reply[a:b]) for a, b in sentence_spans(reply)}:
            counts[key] = counts.get(key, 0) + 1
    least = max(HOUSE_MIN_REPLIES, HOUSE_SHARE * len(replies))
    return frozenset(k for k, n in counts.items() if n >= least and k and not numbers_in(k))


def score(sentence: str, evidence: Evidence) -> float:
    """Support of ``sentence`` by one passage: content-word overlap, 0 if a number is missing."""
    words = content_words(ENUMERATOR.sub("", sentence))
    if not words:
        return 0.0
    if not numbers_in(sentence) <= evidence.numbers:
        return 0.0
    return len(words & evidence.words) / len(words)


def best_score(sentence: str, evidence: Iterable[Evidence]) -> float:
    """The highest support any of ``evidence`` gives ``sentence`` (0 for none)."""
    return max((score(sentence, e) for e in evidence), default=0.0)


def check_rewrite(
    answer: str, supplied: str, *, drop: bool = True, house: frozenset[str] = frozenset()
) -> tuple[str, list[SentenceCheck]]:
    """Check a rewrite of ``supplied`` for facts it adds (the ``style`` route).

    Rewording changes most words, so overlap is reported but not required: a sentence is
    unsupported only when it states a number or a name that ``supplied`` does not contain.

    Args:
        answer: the generated rewrite.
        supplied: the text the user asked to rewrite.
        drop: leave unsupported sentences out of the returned text (else keep them, flagged).
        house: the adapter's boilerplate (`house_sentences`): kept, and not a claim.

    Returns:
        (the text with unsupported sentences dropped or kept, one check per sentence).
    """
    evidence = Evidence.of(supplied)
    supplied_names = names_in(supplied) | content_words(supplied)
    pieces: list[str] = []
    checks: list[SentenceCheck] = []
    previous_end = 0
    for a, b in sentence_spans(answer):
        sentence, gap, previous_end = answer[a:b], answer[previous_end:a], b
        words = content_words(sentence)
        overlap = len(words & evidence.words) / len(words) if words else 0.0
        boilerplate = house_key(sentence) in house
        added = (numbers_in(sentence) - evidence.numbers) or (names_in(sentence) - supplied_names)
        ok = boilerplate or not added
        keep = ok or not drop
        checks.append(SentenceCheck(text=sentence, cited=(), support=overlap, supported=ok,
                                    claim=is_claim(sentence) and not boilerplate, kept=keep))
        if keep:
            if pieces:
                pieces.append("\n" * min(gap.count("\n"), 2) or " ")
            pieces.append(sentence)
    return "".join(pieces), checks


def all_supported(checks: Sequence[SentenceCheck]) -> bool:
    """Whether every kept sentence passes (the answer's ``grounded``, before citations count)."""
    return all(c.supported for c in checks if c.kept)
