"""Facts an output states that its input does not: numbers, dates and names (private).

An adapter trained on such outputs learns to produce figures, dates and names from nowhere;
facts belong in the retrieved passages. The test is deliberately simple, so that a user can
predict it: a number (two digits or more), a month name or a proper name in an output is a
leak when the example's input (system and user messages) does not contain it.

Names are capitalised words that never occur in lower case anywhere in the dataset (so
"Please" or "Settings" are not names) and do not start a sentence, and acronyms (two or more
capitals, anywhere: "NHS", but not "AND" in a shouted reply). A name in a large share of outputs (the company or product in a sign-off) is house
vocabulary, not a fact, and is not counted. Template slots such as ``{{Order Number}}`` are
skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Numbers of 2+ digits, with inner separators (1,250 / 3.5 / 2024-01-31 / 10:30). Single digits
# are left out: list markers ("1.", "2.") and citation marks ("[2]") are style, not facts.
_NUMBER = re.compile(r"(?<![^\W_])\d+(?:[.,:/-]\d+)*")  # not inside a code: "N5921D" is a name
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
# Template slots: {{Order Number}}, {name}, <CUSTOMER_NAME>, [NAME].
_SLOT = re.compile(r"\{\{.*?\}\}|\{[^{}\n]{1,40}\}|<[A-Z][A-Z_ ]*>|\[[A-Z][A-Z_ ]*\]")
# What may stand between the end of a sentence (or a list number, "2.") and its first word.
_LEAD = " \t\"'“‘([*•#>-"
MONTHS = frozenset(
    "January February March April May June July August September October November December "
    "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec".split()
)
# Abbreviations that name no fact ("your order ID", "a PDF copy").
COMMON_ABBREVIATIONS = frozenset(
    "OK ID IDs PIN PINs FAQ FAQs PDF URL URLs AM PM TV USB PS NB FYI ASAP DIY CV TBC TBD etc".split()
)
# A name in the outputs of at least this share of examples (and of HOUSE_MIN examples) is
# house vocabulary: a brand, a product, a team that signs every reply.
HOUSE_SHARE = 0.05
HOUSE_MIN = 3


@dataclass(frozen=True)
class Leak:
    """The facts in one example's output that its input does not hold.

    Attributes:
        index: the example's position in the list given to `find_leaks`.
        facts: the leaked numbers, dates and names, sorted and distinct.
    """

    index: int
    facts: tuple[str, ...]


def find_leaks(examples: Sequence[tuple[str, str]]) -> list[Leak]:
    """The examples whose output states numbers, dates or names absent from their input.

    Args:
        examples: (input, output) text per example; the input is every non-assistant
            message, the output every assistant message.

    Returns:
        One `Leak` per leaking example, in order.
    """
    lower_words = {w for given, output in examples for w in _WORD.findall(given + "\n" + output) if w.islower()}
    names = [_names(_SLOT.sub(" ", output), lower_words) for _given, output in examples]
    counts = Counter(name for found in names for name in found)
    house = {name for name, n in counts.items() if n >= max(HOUSE_MIN, HOUSE_SHARE * len(examples))}
    leaks = []
    for index, ((given, output), candidates) in enumerate(zip(examples, names)):
        given_words = {w.lower() for w in _WORD.findall(given)}
        facts = {n for n in candidates - house if _base(n).lower() not in given_words}
        given_numbers = numbers([given])
        facts |= {n for n in numbers([_SLOT.sub(" ", output)]) if n not in given_numbers and n not in given}
        if facts:
            leaks.append(Leak(index, tuple(sorted(facts))))
    return leaks


def numbers(texts: Iterable[str]) -> set[str]:
    """Numbers of two or more digits in ``texts``, without thousands separators."""
    found = set()
    for text in texts:
        for match in _NUMBER.findall(text):
            number = match.replace(",", "").rstrip(".")
            if sum(ch.isdigit() for ch in number) >= 2:
                found.add(number)
    return found


def _names(text: str, lower_words: set[str]) -> set[str]:
    shouted = sum(map(str.isupper, text)) > sum(map(str.islower, text))  # an all-caps reply has no acronyms
    found = set()
    for match in _WORD.finditer(text):
        if not match.group()[0].isupper():
            continue
        word = _base(match.group())
        if len(word) < 2 or (shouted and word.isupper()) or word in COMMON_ABBREVIATIONS:
            continue
        if word not in MONTHS and word.lower() in lower_words:
            continue  # a common word, capitalised
        if word.isupper() or not _starts_sentence(text, match.start()):
            found.add(word)
    return found


def _starts_sentence(text: str, start: int) -> bool:
    before = text[max(0, start - 24) : start].rstrip(_LEAD)
    return not before or before[-1] in ".!?:;\n\r"


def _base(word: str) -> str:
    # "Cochrane's" -> "Cochrane", "I'm" -> "I", "Smith-Jones" stays whole.
    return word.split("'", 1)[0].split("’", 1)[0]
