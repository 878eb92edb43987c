"""Small text utilities shared by citation resolution and refusal: sentences and content words."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.%-]*[A-Za-z0-9%]|[A-Za-z0-9]")
# A sentence ends at . ! or ? followed by space and an upper-case letter, digit, quote or bracket,
# or at a line break; "U.S. Department" stays one sentence often enough for our purposes.
# Abbreviations that end in a full stop inside a sentence ("the U.S. Dollar", "Apple Inc. and").
_NOT_AN_END = "".join(
    rf"(?<!\b{re.escape(abbreviation)})"
    for abbreviation in ("U.S.", "U.K.", "Inc.", "Corp.", "Co.", "Ltd.", "No.", "Nos.", "e.g.", "i.e.", "vs.", "Mr.", "Ms.", "Dr.", "St.", "Fig.", "approx.")
)
_SENTENCE_END = re.compile(rf"(?:(?<=[.!?])|(?<=[.!?][\"\u201d\u2019])){_NOT_AN_END}\s+(?=[\"'(\[A-Z0-9$\u20ac\u00a3])|\n+")
# In text extracted from PDFs a single line break is where the page's line wrapped, not the end
# of a sentence: only a blank line ends one there.
_PROSE_SENTENCE_END = re.compile(
    rf"(?:(?<=[.!?])|(?<=[.!?][\"\u201d\u2019])){_NOT_AN_END}\s+(?=[\"'(\[A-Z0-9$\u20ac\u00a3])|\n\s*\n"
    r"|\n(?=[ \t]*[-*\u2022\u25aa][ \t])"  # a line that starts a list item starts a sentence
)

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me might
    more most must my myself no nor not now of off on once only or other our ours ourselves out over own
    per same shall she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up upon very via was we were what when where which while
    who whom why will with within would you your yours yourself yourselves
    according answer based cite cites cited document documents page pages source sources say says said
    please tell question""".split()
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (numbers kept, trailing punctuation dropped)."""
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    """The words that carry meaning: tokens minus stopwords and one-letter tokens."""
    return {w for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def sentence_spans(text: str, *, wrapped: bool = False) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text``, whitespace trimmed.

    Args:
        wrapped: the text comes from a PDF page, where single line breaks are line wrapping
            (generated answers keep them: house styles use one line per list item).
    """
    spans, start = [], 0
    for match in (_PROSE_SENTENCE_END if wrapped else _SENTENCE_END).finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    if wrapped:
        spans = [part for a, b in spans for part in _split_headings(text, a, b)]
    out = []
    for a, b in spans:
        segment = text[a:b]
        lead = len(segment) - len(segment.lstrip())
        trail = len(segment.rstrip())
        if trail > lead:
            out.append((a + lead, a + trail))
    return out


# A wrapped line shorter than this, without closing punctuation, before a capitalised line, is a
# heading: "What happens to a PDF that cannot be read\nA PDF that ..." is two sentences.
HEADING_CHARS = 60


def _split_headings(text: str, a: int, b: int) -> list[tuple[int, int]]:
    parts, line_start = [], a
    for match in re.finditer(r"\n", text[a:b]):
        cut = a + match.start()
        line = text[line_start:cut].strip()
        following = text[cut + 1 : cut + 2]
        if line and len(line) < HEADING_CHARS and line[-1] not in ".,;:!?-" and following.isupper():
            parts.append((a if not parts else parts[-1][1] + 1, cut))
        line_start = cut + 1
    start = parts[-1][1] + 1 if parts else a
    return [*parts, (start, b)]


def support(claim: str, passage_words: set[str]) -> float:
    """Share of the claim's content words that the passage contains (0 when it has none)."""
    claim_words = content_words(claim)
    if not claim_words:
        return 0.0
    return len(claim_words & passage_words) / len(claim_words)
