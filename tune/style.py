"""The style score: how closely a generated reply follows the *form* of a house-style reference.

No torch needed. The score of one reply is the mean of the components that apply to it, each
from 0 (nothing alike) to 1 (the same):

- ``chrf``: character n-gram F-score (chrF, n = 1..6, beta = 2: recall weighs twice as much as
  precision) on the *wording*. Numbers, and words of four or more letters that also appear in
  the prompt, are blanked out in both texts first, so the facts a reply takes from the question
  neither earn nor cost anything; what is compared is the phrasing around them.
- ``markers``: the share of the house markers found in this reference that the reply also
  contains. Markers are word sequences that recur across many references (openings, closings,
  sign-offs, disclaimers, section labels such as "Details:"), found from the references
  themselves; a reference holding none leaves this component out.
- ``length``: shorter word count / longer word count.
- ``layout``: how closely the counts of non-empty lines, paragraphs (blocks between blank
  lines) and list items (lines starting with -, *, or 1.) agree (smaller / larger, averaged).

Limits: it compares surface form with one reference per prompt. A reply in the right form with
wrong facts can score high, and a good reply worded differently from its reference scores lower
than it deserves. Compare scores of models on the same examples; the absolute value means little.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

COMPONENTS = ("chrf", "markers", "length", "layout")
# One sentence for reports: what the number is.
MEANING = (
    "style score: 0-1, how closely generated replies follow the form of the reference replies: "
    "wording around the facts (chrF), recurring house phrases (openings, closings, labels), "
    "length and layout (lines, paragraphs, lists); it does not check facts"
)
CHRF_ORDER = 6  # longest character n-gram (chrF's usual 6)
CHRF_BETA = 2.0  # recall weighs beta^2 = 4 times as much as precision (chrF's usual 2)
MARKER_SHARE = 0.3  # a phrase is a house marker when at least this share of references has it
MARKER_MIN_REFERENCES = 3  # with fewer references nothing can be said to recur
MAX_MARKERS = 12
_EDGE_TOKENS = range(2, 9)  # lengths of opening and closing phrases tried, in tokens
_LINE_HEAD_TOKENS = range(2, 5)  # lengths of line openings tried ("details :", "next step :")
_WHOLE_UNIT_TOKENS = 12  # a line or sentence this short may be a marker as a whole ("-- the support team")
_MASK_MIN_LETTERS = 4  # shorter prompt words are mostly function words: they stay
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class StyleScore:
    """One reply's score against its reference.

    Attributes:
        score: the mean of the components that apply (see the module docstring).
        chrf: character n-gram F-score on the wording, facts from the prompt blanked out.
        markers: share of the reference's house markers the reply has; None when it has none.
        length: shorter / longer word count.
        layout: agreement of line, paragraph and list-item counts.
    """

    score: float
    chrf: float
    markers: float | None
    length: float
    layout: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def chrf(hypothesis: str, reference: str, *, order: int = CHRF_ORDER, beta: float = CHRF_BETA) -> float:
    """Character n-gram F-score (Popovic 2015), 0..1: the mean over n = 1..order of F-beta.

    Whitespace is ignored, as in sacrebleu's chrF. Orders that neither text is long enough for
    are left out of the mean; two empty texts score 1, one empty text 0.
    """
    hyp, ref = "".join(hypothesis.split()), "".join(reference.split())
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    scores = []
    for n in range(1, order + 1):
        hyp_grams, ref_grams = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not hyp_grams or not ref_grams:
            continue
        match = sum((hyp_grams & ref_grams).values())
        precision, recall = match / sum(hyp_grams.values()), match / sum(ref_grams.values())
        denominator = beta**2 * precision + recall
        scores.append((1 + beta**2) * precision * recall / denominator if denominator else 0.0)
    if not scores:  # both shorter than one n-gram of every order: cannot happen for order >= 1
        return 0.0
    return sum(scores) / len(scores)


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def tokens(text: str) -> tuple[str, ...]:
    """Lower-cased words and punctuation marks, digit runs as ``#`` (numbers are facts, not form)."""
    return tuple(_TOKEN.findall(re.sub(r"\d+", "#", text.lower())))


def find_markers(references: Sequence[str], *, share: float = MARKER_SHARE, most: int = MAX_MARKERS) -> list[str]:
    """Phrases that recur across the references: the house's openings, closings and labels.

    Candidates from each reference: the first 2-8 tokens of its first sentence and the last 2-8
    of its last, the first 2-4 tokens of each line, and each line or sentence of at most 12
    tokens. A candidate is a marker when at least ``share``
    of the references (and at least two) contain it; a marker inside a longer one found in as
    many references is dropped, since it adds nothing.

    Returns:
        Up to ``most`` markers as token sequences joined by spaces, most frequent first; none
        when there are fewer than `MARKER_MIN_REFERENCES` references.
    """
    if len(references) < MARKER_MIN_REFERENCES:
        return []
    counts: Counter[tuple[str, ...]] = Counter()
    for reference in references:
        counts.update(_candidates(reference))
    needed = max(2, math.ceil(share * len(references)))
    found = sorted((c for c, n in counts.items() if n >= needed), key=lambda c: (-counts[c], -len(c), c))
    kept: list[tuple[str, ...]] = []
    for candidate in found:
        if not any(counts[longer] >= counts[candidate] and _contains(longer, candidate) for longer in kept):
            kept.append(candidate)
    return [" ".join(marker) for marker in kept[:most]]


def _candidates(reference: str) -> set[tuple[str, ...]]:
    lines = [line for line in reference.splitlines() if line.strip()]
    sentences = [s for line in lines for s in _SENTENCE_END.split(line) if s.strip()]
    if not sentences:
        return set()
    # Openings and closings stay inside the first and last sentence, so that the words before a
    # sign-off ("... today. Kind regards") do not make it a different phrase in every reply.
    first, last = tokens(sentences[0]), tokens(sentences[-1])
    found = {first[:n] for n in _EDGE_TOKENS if len(first) >= n} | {last[-n:] for n in _EDGE_TOKENS if len(last) >= n}
    for line in lines:
        line_words = tokens(line)
        found |= {line_words[:n] for n in _LINE_HEAD_TOKENS if len(line_words) >= n}
    for unit in lines + sentences:  # a short line or sentence may be a marker as a whole
        if len(unit_words := tokens(unit)) <= _WHOLE_UNIT_TOKENS:
            found.add(unit_words)
    return {c for c in found if any(t[0].isalnum() for t in c)}  # punctuation alone is no marker


def _contains(words: tuple[str, ...], part: tuple[str, ...]) -> bool:
    n = len(part)
    return any(words[i : i + n] == part for i in range(len(words) - n + 1))


def style_score(generated: str, reference: str, *, markers: Sequence[str] = (), prompt: str = "") -> StyleScore:
    """Score one generated reply against its reference (see the module docstring).

    Args:
        markers: the house markers of the whole reference set (`find_markers`).
        prompt: the conversation the reply answers; its longer words are blanked out for chrF.
    """
    facts = {w for w in re.findall(r"[^\W\d_]+", prompt.lower()) if len(w) >= _MASK_MIN_LETTERS}
    wording = chrf(_blank(generated, facts), _blank(reference, facts))
    gen_words, ref_words = tokens(generated), tokens(reference)
    expected = [m for m in (tuple(m.split()) for m in markers) if _contains(ref_words, m)]
    marker_share = sum(_contains(gen_words, m) for m in expected) / len(expected) if expected else None
    length = _closeness(len(generated.split()), len(reference.split()))
    layout = sum(_closeness(a, b) for a, b in zip(_layout(generated), _layout(reference), strict=True)) / 3
    parts = [p for p in (wording, marker_share, length, layout) if p is not None]
    return StyleScore(sum(parts) / len(parts), wording, marker_share, length, layout)


def _blank(text: str, facts: set[str]) -> str:
    text = re.sub(r"\d+(?:[.,]\d+)*", "#", text)
    return re.sub(r"[^\W\d_]+", lambda m: "_" if m.group(0).lower() in facts else m.group(0), text)


def _layout(text: str) -> tuple[int, int, int]:
    lines = [line for line in text.splitlines() if line.strip()]
    paragraphs = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    return len(lines), len(paragraphs), sum(1 for line in lines if _LIST_ITEM.match(line))


def _closeness(a: int, b: int) -> float:
    """smaller / larger; 1 when both are 0."""
    return 1.0 if a == b else min(a, b) / max(a, b)


def mean_components(scores: Sequence[StyleScore]) -> dict[str, float | None]:
    """The mean of ``score`` and of each component (``markers`` over the replies it applies to)."""
    means: dict[str, float | None] = {}
    for name in ("score", *COMPONENTS):
        values = [v for v in (getattr(s, name) for s in scores) if v is not None]
        means[name] = sum(values) / len(values) if values else None
    return means
