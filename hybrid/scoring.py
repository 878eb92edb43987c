"""The scorecard's measures of one answer against its gold answer, and of one retrieval.

All of them are plain functions of text, so the same code scores our pipeline and any
reference (``bench/answers.py``) the same way:

- ``token_f1``: SQuAD's token F1 (lower case, punctuation and articles removed), with
  thousands separators dropped first so that "82,959" and "82959" are one token.
- ``gold_recall``: the share of the gold answer's content words that the answer contains.
- ``beyond_question_recall``: the same, counting only gold words that are not in the question;
  restating the question earns nothing here.
- ``numbers_matched``: the share of the gold answer's numbers that the answer states; None when
  the gold answer has none.
- ``first_rank``: where the first gold document (or page) is among the retrieved passages.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from hybrid.grounding import numbers_in
from hybrid.text import content_words

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation if c not in "%"})


def answer_tokens(text: str) -> list[str]:
    """SQuAD's normalised tokens: lower case, no punctuation (``%`` kept), no articles."""
    text = _THOUSANDS.sub("", text.lower())
    return _ARTICLES.sub(" ", text.translate(_PUNCTUATION)).split()


def token_f1(answer: str, gold: str) -> float:
    """Harmonic mean of token precision and recall against ``gold`` (0 for an empty answer)."""
    ours, theirs = Counter(answer_tokens(answer)), Counter(answer_tokens(gold))
    common = sum((ours & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ours.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def _words(text: str) -> set[str]:
    return content_words(_THOUSANDS.sub("", text))


def gold_recall(answer: str, gold: str) -> float:
    """Share of ``gold``'s content words found in ``answer`` (1.0 when gold has none)."""
    wanted = _words(gold)
    return len(wanted & _words(answer)) / len(wanted) if wanted else 1.0


def beyond_question_recall(answer: str, gold: str, question: str) -> float | None:
    """Share of ``gold``'s content words that are not in ``question`` found in ``answer``;
    None when every gold word is in the question."""
    wanted = _words(gold) - _words(question)
    return len(wanted & _words(answer)) / len(wanted) if wanted else None


def numbers_matched(answer: str, gold: str) -> float | None:
    """Share of ``gold``'s numbers that ``answer`` states; None when ``gold`` states none."""
    wanted = numbers_in(gold)
    return len(wanted & numbers_in(answer)) / len(wanted) if wanted else None


def first_rank(found: Sequence[tuple[str, int]], is_gold: Callable[[str, int], bool]) -> int | None:
    """1-based rank of the first ``(source, page)`` that ``is_gold``; None when none is."""
    return next((rank for rank, (source, page) in enumerate(found, start=1) if is_gold(source, page)), None)


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` percentile (nearest rank: 0.5 is the median, 0.95 the p95); None for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]
