"""Split a page into chunks along its structure: headings stay with their text, tables whole.

pypdf gives a page as lines. Each line is read as a heading (short, title-like, no closing
punctuation), a table row (several figures: amounts, percentages, years) or prose. A section
is a heading and what follows it up to the next heading. A section that fits in a chunk is one
chunk; a longer one is cut between its paragraphs and tables (a table is cut only between its
rows), and every piece after the first starts with the section heading again, so a passage
about "Effective tax rate 12.5 %" still says it is under "Provision for Income Taxes".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_FIGURE = re.compile(r"(?<![\w.])[$€£(]?-?\d[\d,]*(?:\.\d+)?\)?%?(?![\w])")
_LETTER = re.compile(r"[^\W\d_]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"“])")
_MAX_HEADING = 90
# Amounts, percentages and long numbers belong to rows and sentences, not to headings.
_NOT_IN_HEADINGS = re.compile(r"[$€£%]|\d[\d,]*[.,]\d|\d{5,}")
# A section shorter than this (a heading over a sub-heading, say) joins the next one.
_MIN_SECTION = 160


@dataclass
class _Section:
    heading: str = ""
    units: list[tuple[str, str]] = field(default_factory=list)  # (kind, text): "prose" | "table"

    def add(self, kind: str, line: str) -> None:
        if self.units and self.units[-1][0] == kind:
            self.units[-1] = (kind, self.units[-1][1] + "\n" + line)
            return
        if kind == "table" and self.units:
            # A table's caption ("... as follows:") and column headers ("Three Months Ended",
            # "(In millions)") are the short lines just before its first row: move them in.
            lines = self.units[-1][1].split("\n")
            moved = []
            while lines and (len(lines[-1]) < _MIN_FOLLOWING or lines[-1].endswith(":")):
                moved.insert(0, lines.pop())
                if moved[0].endswith(":"):
                    break
            if lines and lines[-1].endswith(":") and not moved:
                moved.insert(0, lines.pop())
            if lines:
                self.units[-1] = ("prose", "\n".join(lines))
            else:
                self.units.pop()
            line = "\n".join([*moved, line])
        self.units.append((kind, line))

    def size(self) -> int:
        return len(self.heading) + sum(len(text) + 1 for _, text in self.units)


def is_table_row(line: str) -> bool:
    """Two or more figures and few words: a row of a financial or statistical table."""
    figures = _FIGURE.findall(line)
    if len(figures) < 2:
        return False
    words = [w for w in re.findall(r"[^\W\d_]{2,}", line)]
    return len(words) <= 8 or len(figures) >= len(words)


def is_heading(line: str, following: str | None) -> bool:
    """A short title-like line that introduces text: no final punctuation, mostly capitalised.

    What follows must be a line of prose or another heading, not a short fragment: a table's
    column header ("Three Months Ended") is followed by dates and figures.
    """
    text = line.strip()
    if not text or len(text) > _MAX_HEADING or following is None:
        return False
    following = following.strip()
    if is_table_row(following) or (len(following) < _MIN_FOLLOWING and not _looks_titled(following)):
        return False
    if text[-1] in ".,;:" or not _LETTER.match(text[0]) or not text[0].isupper():
        return False
    if is_table_row(text) or _NOT_IN_HEADINGS.search(text):
        return False
    # "Provision for Income Taxes", "Note 14 - Shareholders' Equity", "RISK FACTORS"; and a
    # short sentence-case heading ("Capital return program") when the next line starts a new
    # sentence, which a wrapped prose line rarely does.
    words = re.findall(r"[^\W\d_]\S*", text)
    if not words or len(words) > 12:
        return False
    return _looks_titled(text) or (len(words) <= 5 and following[0].isupper())


_SMALL_WORDS = frozenset("and or of the for to in on a an by with from at as per vs".split())
_MIN_FOLLOWING = 40


def _looks_titled(text: str) -> bool:
    words = re.findall(r"[^\W\d_]\S*", text)
    if not words or len(words) > 12 or text[-1:] in ".,;:" or not text[0].isupper():
        return False
    return all(w[0].isupper() or w.lower() in _SMALL_WORDS for w in words)


def sections(text: str) -> list[_Section]:
    """The page's sections in order; text before the first heading forms an untitled one."""
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    out = [_Section()]
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else None
        if is_heading(line, following):
            if out[-1].units or not out[-1].heading:
                out.append(_Section(heading=line))
            else:  # a heading right under another: one heading of two lines
                out[-1].heading += "\n" + line
        else:
            out[-1].add("table" if is_table_row(line) else "prose", line)
    return [s for s in out if s.heading or s.units]


def chunk_structured(text: str, size: int, overlap: int, split: Callable[[str], list[str]]) -> list[str]:
    """Cut one page's text into chunks of at most about `size` characters.

    Args:
        size: the target chunk length in characters.
        overlap: characters of prose repeated from the end of a piece at the start of the next
            piece of the same section (whole sentences only).
        split: a plain splitter for a single unit longer than `size`.
    """
    merged: list[_Section] = []
    for section in sections(text):
        if merged and merged[-1].size() < _MIN_SECTION:
            # A short section (a heading over a sub-heading, a stray line) joins the next.
            head = merged[-1]
            if section.heading:
                head.units.append(("prose", section.heading))
            head.units.extend(section.units)
        else:
            merged.append(section)
    chunks: list[str] = []
    current = ""
    for section in merged:
        texts = _pack(section, size, overlap, split)
        whole = texts[0] if len(texts) == 1 else None
        if whole is not None and current and len(current) + 1 + len(whole) <= size:
            current += "\n" + whole  # small sections share a chunk, each with its heading
            continue
        if current:
            chunks.append(current)
        current = ""
        if whole is not None:
            current = whole
        else:
            chunks.extend(texts)
    if current:
        chunks.append(current)
    return chunks


def _pack(section: _Section, size: int, overlap: int, split: Callable[[str], list[str]]) -> list[str]:
    heading = section.heading
    room = max(size - len(heading) - 1, size // 2)
    pieces: list[str] = []
    for kind, text in section.units:
        if len(text) <= room:
            pieces.append(text)
        elif kind == "table":
            pieces.extend(_rows(text, room))
        else:
            pieces.extend(p.strip() for p in split(text) if p.strip())
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > room:
            chunks.append(current)
            carry = _tail(current, overlap)
            current = f"{carry}\n{piece}" if carry and len(carry) + 1 + len(piece) <= room else piece
        else:
            current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return [f"{heading}\n{c}" if heading else c for c in chunks]


def _rows(table: str, room: int) -> list[str]:
    """A long table as runs of whole rows."""
    out, current = [], ""
    for row in table.split("\n"):
        if current and len(current) + 1 + len(row) > room:
            out.append(current)
            current = row
        else:
            current = f"{current}\n{row}" if current else row
    if current:
        out.append(current)
    return out


def _tail(text: str, limit: int) -> str:
    """The last whole sentences of `text` within `limit` characters ("" if none fits)."""
    if limit <= 0 or is_table_row(text.rsplit("\n", 1)[-1]):
        return ""
    sentences = _SENTENCE_END.split(text.replace("\n", " "))
    tail = ""
    for sentence in reversed(sentences):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > limit:
            break
        tail = candidate
    return tail if tail != text.replace("\n", " ").strip() else ""
