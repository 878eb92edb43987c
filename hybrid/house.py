"""The house frame an adapter learnt: its opening, its paragraph labels, its closing line.

When no generated sentence passes the support check, the answer is the best evidence sentences
quoted. Quoted bare, they lose the house style the adapter exists for; so they are set in the
frame the adapter's training replies share:

- **opening**: a first paragraph that at least ``HOUSE_SHARE`` of the replies start with
  ("Thank you for your question.");
- **labels**: the label that starts the i-th paragraph of the body in that share of the
  replies ("Answer:", "Details:"), one per evidence sentence;
- **closing**: a last paragraph they share ("Please check the cited pages before relying on
  this summary.");
- **separator**: a blank line between paragraphs when most replies use one, else a line break.

Sentences with numbers are never frame: a repeated "Our line is open 24/7." is a fact.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from hybrid.grounding import HOUSE_MIN_REPLIES, HOUSE_SHARE, house_key, numbers_in

_PARAGRAPH = re.compile(r"\n\s*\n")
_LABEL = re.compile(r"^([A-Z][\w /&-]{0,30}:)\s")


@dataclass(frozen=True)
class HouseFrame:
    """Where the adapter's replies put what they say (see the module docstring)."""

    opening: str = ""
    labels: tuple[str, ...] = ()
    closing: str = ""
    separator: str = "\n\n"

    def wrap(self, sentences: Sequence[str]) -> str:
        """``sentences`` as an answer in this frame: one per paragraph, labelled where the house
        labels its paragraphs, between the opening and the closing."""
        parts = [self.opening] if self.opening else []
        for i, sentence in enumerate(sentences):
            label = self.labels[i] if i < len(self.labels) else ""
            parts.append(f"{label} {sentence}".strip())
        if self.closing:
            parts.append(self.closing)
        return self.separator.join(parts)

    def __bool__(self) -> bool:
        return bool(self.opening or self.labels or self.closing)


def house_frame(replies: Sequence[str]) -> HouseFrame:
    """The frame ``replies`` (an adapter's training replies) share; empty when they share none."""
    replies = [r.strip() for r in replies if r.strip()]
    if not replies:
        return HouseFrame()
    least = max(HOUSE_MIN_REPLIES, HOUSE_SHARE * len(replies))
    paragraphs = [[p.strip() for p in _PARAGRAPH.split(r) if p.strip()] for r in replies]
    opening = _shared([ps[0] for ps in paragraphs if len(ps) > 1], least)
    closing = _shared([ps[-1] for ps in paragraphs if len(ps) > 1], least)
    labels: list[str] = []
    for position in range(3):
        found = Counter()
        for ps in paragraphs:
            body = [p for p in ps if house_key(p) not in (house_key(opening), house_key(closing))]
            if position < len(body) and (match := _LABEL.match(body[position])):
                found[match.group(1)] += 1
        label, count = found.most_common(1)[0] if found else ("", 0)
        if count < least:
            break
        labels.append(label)
    blank = sum(bool(_PARAGRAPH.search(r)) for r in replies)
    return HouseFrame(opening, tuple(labels), closing, "\n\n" if blank >= len(replies) / 2 else "\n")


def _shared(paragraphs: Sequence[str], least: float) -> str:
    """The paragraph (as first written) that at least ``least`` of them are, ignoring case and
    closing punctuation; "" when none is, or when it states a number."""
    counts = Counter(house_key(p) for p in paragraphs)
    if not counts:
        return ""
    key, count = counts.most_common(1)[0]
    if count < least or not key or numbers_in(key):
        return ""
    return next(p for p in paragraphs if house_key(p) == key)
