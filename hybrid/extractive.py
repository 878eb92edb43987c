"""An extractive answer: the passage sentences that best match the question, quoted.

Used when the generated answer cites nothing that the passages support (small models drift into
talking about the sources instead of answering from them). Quoting the best-matching sentences
keeps the promise that every claim comes from a cited page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hybrid.text import content_words, sentence_spans

if TYPE_CHECKING:
    from ingest import Hit

LEAD = "From the documents:"
MAX_SENTENCES = 2
MAX_SENTENCE_CHARS = 400


def extract_answer(question: str, hits: Sequence["Hit"]) -> str | None:
    """Up to two passage sentences sharing the most content words with the question, with the
    ``[n]`` marker of their passage (prompt numbering); None when nothing overlaps."""
    wanted = content_words(question)
    scored = []
    for n, hit in enumerate(hits, start=1):
        for a, b in sentence_spans(hit.text, wrapped=True):
            sentence = " ".join(hit.text[a:b].split())
            words = content_words(sentence)
            if len(sentence) > MAX_SENTENCE_CHARS or len(words) < 3 or sentence.endswith("?") or words <= wanted:
                continue  # questions and headings restate the question rather than answer it
            overlap = len(words & wanted)
            if overlap:
                # A sentence cut by the chunk boundary ranks below whole ones; at equal overlap,
                # earlier passages first, since retrieval already ordered them.
                complete = sentence[-1] in ".!)\""
                scored.append((overlap - (not complete), -n, sentence, n))
    if not scored:
        return None
    scored.sort(reverse=True)
    chosen, seen = [], set()
    for _, _, sentence, n in scored:
        if sentence not in seen:
            seen.add(sentence)
            chosen.append(f"{sentence.rstrip('.')} [{n}].")
        if len(chosen) == MAX_SENTENCES:
            break
    return f"{LEAD} " + " ".join(chosen)
