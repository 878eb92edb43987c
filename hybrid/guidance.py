"""The fine-tuning-versus-retrieval guidance, applied at serve time.

Facts come from retrieved passages, never from the adapter. So a question is answered only when
retrieval finds a passage relevant enough; otherwise the answer is a plain refusal. Two tests:

1. The best passage's cosine similarity clears a threshold calibrated per embedder on questions
   whose answers are in a corpus and on questions no document covers
   (``bench/calibrate_refusal.py``; figures in docs/concepts/refusal.md).
2. Every name the question asks about (a capitalised word not starting a sentence: "Tesla", "Q3",
   "Chevroux") appears somewhere in the collection. Dense scores cannot tell "Alphabet's revenue"
   from "Apple's revenue" in a corpus of filings; a missing name can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING

from hybrid.text import STOPWORDS

if TYPE_CHECKING:
    from ingest import Hit

REFUSAL = "The documents do not cover this question, so I cannot answer it from them."
# The style route's refusal: every sentence of the rewrite added a fact the text does not hold.
REWRITE_REFUSAL = "I could not rewrite this text without changing its facts, so I have not rewritten it."

# Best-passage cosine similarity below which a question counts as not covered, per embedder.
# all-MiniLM-L6-v2 on the SEC 10-Q set: covered questions score 0.545-0.839, off-corpus ones
# 0.107-0.293 (bench/calibrate_refusal.py); 0.35 leaves margin on the side of refusing.
CALIBRATED_MIN_SCORE = {"all-MiniLM-L6-v2": 0.35}
# For an embedder we have not calibrated: a conservative value for normalised sentence embedders.
UNCALIBRATED_MIN_SCORE = 0.30

_TOKEN = re.compile(r"[A-Za-z0-9][\w&.'+-]*")
_WORD = re.compile(r"[a-z0-9]+")
# "the third quarter" names the period that a file name such as "2023 Q3 AAPL.pdf" calls Q3.
_QUARTER = re.compile(r"\b(first|second|third|fourth)\s+(?:fiscal\s+)?quarter\b", re.IGNORECASE)
_QUARTERS = {"first": "q1", "second": "q2", "third": "q3", "fourth": "q4"}


@dataclass(frozen=True)
class Decision:
    """Whether to answer from the passages, and why."""

    answer: bool
    reason: str


def min_score_for(embedder: str, override: float | None = None) -> float:
    """The refusal threshold for ``embedder``: the user's override, else the calibrated value."""
    if override is not None:
        return override
    return CALIBRATED_MIN_SCORE.get(embedder, UNCALIBRATED_MIN_SCORE)


def names_in(question: str) -> list[str]:
    """Capitalised words not starting a sentence, possessives and trailing dots removed.

    ``"What was Alphabet's revenue in Q2?"`` -> ``["Alphabet", "Q2"]``.
    """
    names = []
    for match in _TOKEN.finditer(question):
        before = question[: match.start()].rstrip()
        if not before or before[-1] in ".?!:;\n":
            continue  # a sentence's first word is capitalised anyway
        token = re.sub(r"'s$", "", match.group().rstrip(".'-"))
        if token[:1].isupper() and token.lower() not in STOPWORDS and token not in names:
            names.append(token)
    return names


def name_words(text: str) -> frozenset[str]:
    """The words of a file name or question that can name a document: lower-case runs of
    letters and digits, two characters or more, no stop words; "first quarter" reads "q1".

    ``"In the third quarter of 2022, ..."`` and ``"2022 Q3 AAPL"`` share ``{"q3", "2022"}``.
    """
    text = _QUARTER.sub(lambda m: " " + _QUARTERS[m.group(1).lower()] + " ", text)
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS)


def documents_named(question: str, sources: Sequence[str]) -> dict[str, int]:
    """For each document, how many of the question's words its file name holds.

    Only words of the file name (not its folder) that tell names apart count: a word that
    every name has ("report" in each) names none of them. People name files by what they hold
    (company, period, product, version), and a question that says "Q3 2022" means that filing,
    which embeddings alone rank no higher than its neighbours (measured in
    docs/concepts/pipeline.md).
    """
    if len(sources) < 2:
        return dict.fromkeys(sources, 0)
    named = {source: _stem_words(source) for source in sources}
    common = frozenset.intersection(*named.values())
    asked = name_words(question) - common
    return {source: len(words & asked) for source, words in named.items()}


@lru_cache(maxsize=65_536)
def _stem_words(source: str) -> frozenset[str]:
    return name_words(PurePath(source).stem)


def decide(hits: Sequence["Hit"], min_score: float, missing_names: Sequence[str] = ()) -> Decision:
    """Answer only when the best passage clears the threshold and every name asked about is known.

    Args:
        hits: retrieved passages, best first.
        min_score: the calibrated threshold (``min_score_for``).
        missing_names: names from the question that appear nowhere in the collection.
    """
    if not hits:
        return Decision(False, "the index returned no passages")
    best = max(h.score for h in hits)
    if best < min_score:
        return Decision(False, f"best passage scores {best:.2f}, below the threshold {min_score:.2f}")
    if missing_names:
        return Decision(False, f"the documents never mention {', '.join(missing_names)}")
    return Decision(True, f"best passage scores {best:.2f} (threshold {min_score:.2f})")
