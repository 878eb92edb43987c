"""Evidence first: the sentences of the retrieved passages that answer the question.

A 135M-parameter model shown five passages of 900 characters mostly restates the question or
talks about the sources; shown the three or four sentences that hold the answer, it can copy
the answer. So after retrieval every sentence (and every row of a table) of the relevant
passages is scored by the question, and only the best are shown to the model, numbered by the
passage (source and page) they come from:

- **dense**: cosine between the question and the sentence, with its passage's header (the
  document's name and the section heading the chunk starts with) in front, so that "Total net
  sales 81,797" is read as a line of Apple's 2023 Q3 statement of operations;
- **lexical**: the share of the question's content words (weighted by how rare they are among
  the candidates) that the sentence contains;
- **passage**: the retrieval score of the passage it comes from, so a sentence of the best
  passage wins a tie;
- with a cross-encoder configured (``search.reranker``), its score of (question, sentence)
  replaces the dense one.

Questions, headings and fragments without a claim are never evidence; neither is a sentence
whose content words are all in the question (it restates the question rather than answering).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hybrid.grounding import is_claim, numbers_in
from hybrid.support import units
from hybrid.text import content_words

if TYPE_CHECKING:
    from ingest import Hit

# How much each signal counts (dense cosine is in [-1, 1], the others in [0, 1]).
LEXICAL_WEIGHT = 0.5
PASSAGE_WEIGHT = 0.3
# Longest evidence sentence shown, in characters (a run-on table row is cut here).
MAX_SENTENCE_CHARS = 400
# A first line shorter than this without closing punctuation is the chunk's section heading.
HEADING_CHARS = 90
_CLOSING = ".!?:;)\"'\u201d"


@dataclass(frozen=True)
class Sentence:
    """One evidence sentence: its text (verbatim, whitespace made single), the passage it comes
    from, its score for the question, and the (rarity-weighted) share of the question's content
    words it contains."""

    text: str
    hit: Hit
    score: float
    overlap: float = 0.0


def select(
    question: str,
    hits: Sequence[Hit],
    embed: Callable[[Sequence[str]], np.ndarray],
    count: int,
    rerank: Callable[[str, Sequence[str]], Sequence[float]] | None = None,
) -> list[Sentence]:
    """The ``count`` sentences of ``hits`` that best answer ``question``, best first."""
    asked = content_words(question)
    candidates = [(text, hit) for hit in hits for text in _sentences(hit) if _answers(text, asked)]
    if not candidates:
        return []
    texts = [text for text, _ in candidates]
    if rerank is not None:
        semantic = np.asarray(rerank(question, texts), dtype=np.float32)
    else:
        vectors = np.asarray(embed([question, *(f"{header(hit)}: {text}" for text, hit in candidates)]), dtype=np.float32)
        semantic = vectors[1:] @ vectors[0]
    rarity = _idf([content_words(t) for t in texts])
    weight = sum(rarity.get(w, 1.0) for w in asked) or 1.0
    scored = []
    for (text, hit), dense in zip(candidates, semantic, strict=True):
        lexical = sum(rarity.get(w, 1.0) for w in asked & content_words(text)) / weight
        scored.append(Sentence(text, hit, float(dense) + LEXICAL_WEIGHT * lexical + PASSAGE_WEIGHT * hit.score, lexical))
    scored.sort(key=lambda s: -s.score)
    chosen: list[Sentence] = []
    for sentence in scored:
        if all(_distinct(sentence.text, c.text) for c in chosen):
            chosen.append(sentence)
        if len(chosen) == count:
            break
    return chosen


def group(sentences: Sequence[Sentence]) -> list[Hit]:
    """The chosen sentences as passages for the prompt and the citations: one per chunk, in the
    order of its best sentence, holding its sentences in the order the chunk has them."""
    chunks: dict[str, list[Sentence]] = {}
    for sentence in sentences:
        chunks.setdefault(sentence.hit.chunk_id, []).append(sentence)
    grouped = []
    for members in chunks.values():
        hit = members[0].hit
        ordered = sorted(members, key=lambda s: " ".join(hit.text.split()).find(s.text))
        # A blank line between them: each stays a sentence of its own for the quotes and the check.
        grouped.append(dataclasses.replace(hit, text="\n\n".join(s.text for s in ordered)))
    return grouped


def header(hit: Hit) -> str:
    """The passage's document name and section heading: context for scoring its sentences."""
    name = Path(hit.source).stem
    first = hit.text.strip().split("\n", 1)[0].strip()
    if first and len(first) < HEADING_CHARS and first[-1] not in ".!?:;,":
        return f"{name}, {first}"
    return name


def _sentences(hit: Hit) -> list[str]:
    texts = []
    for a, b in units(hit.text):
        text = " ".join(hit.text[a:b].split())
        if len(text) > MAX_SENTENCE_CHARS:
            text = text[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0]
        texts.append(text)
    return texts


def _answers(text: str, asked: set[str]) -> bool:
    """Whether ``text`` can be evidence: a sentence or a table row that makes a claim, and does
    not restate the question.

    Not evidence: questions; headings and running headers ("Note 1 - Summary of Significant
    Accounting Policies", "Apple Inc. | Q2 2023 Form 10-Q | 18"), which end without
    punctuation and state fewer than two figures, or are mostly capitals; sentences cut by the
    chunk's start, which begin in lower case and have lost their subject.
    """
    if text.endswith("?") or not is_claim(text) or " | " in text or text[0].islower():
        return False
    letters = [c for c in text if c.isalpha()]
    if sum(c.isupper() for c in letters) > 0.5 * len(letters):  # an upper-case heading
        return False
    if text[-1] not in _CLOSING and len(numbers_in(text)) < 2:
        return False
    return not content_words(text) <= asked


def _idf(bags: Sequence[set[str]]) -> dict[str, float]:
    """Inverse document frequency of each word over the candidate sentences (1 + ln(n / df))."""
    counts: dict[str, int] = {}
    for bag in bags:
        for word in bag:
            counts[word] = counts.get(word, 0) + 1
    return {word: 1.0 + math.log(len(bags) / df) for word, df in counts.items()}


def _distinct(a: str, b: str) -> bool:
    """Not a near-copy: repeated headings and boilerplate would waste the model's few sentences."""
    wa, wb = content_words(a), content_words(b)
    return not wa or not wb or len(wa & wb) / min(len(wa), len(wb)) < 0.8
