"""The strict support check: does the evidence a sentence cites really say what it says?

Word overlap alone accepts nonsense made of the evidence's words ("1. Pre-training tasks ...
2. Pre-feeling tasks"), the same words shuffled, and another document's sentence that shares
the vocabulary. A sentence is supported here only when all six hold against the texts it
cites:

1. **numbers**: every number it states is in them (95 minutes is not "about 2 hours");
2. **coverage**: at least ``MIN_COVERAGE`` of its content words are in them (words compared by a
   light stem, so "reported" matches "reports");
3. **order**: at least ``MIN_ORDER`` of its pairs of neighbouring content words stand side by
   side, in the same order, in an evidence sentence: a shuffled sentence fails;
4. **meaning**: its embedding is at least ``min_similarity`` (cosine) from the closest
   evidence sentence, a threshold calibrated per embedder on the SEC 10-Q QA set
   (``bench/support_check.py``; figures in docs/concepts/grounding.md);
5. **polarity**: it negates ("not", "no", "never", "n't", ...) exactly when the evidence
   sentence that holds most of its words does. "The Company did not repurchase 262 million
   shares" from "The Company repurchased 262 million shares" passes the other four tests
   (seen with the demo's house adapter on the SEC questions); embeddings barely tell them
   apart.
6. **no swapped word**: no content word of it that the evidence lacks stands where an evidence
   sentence has another word between the same neighbours: "It changes how the base model
   reads" against "The adapter changes how the base model writes" (seen in the docs' own
   demo answers) covers 3 of its 4 content words and keeps their order, but says another
   thing. At the sentence's edges one neighbour is enough ("model reads" / "model writes").

A sentence with fewer than two content words has no pairs; order then counts as met. Without
an embedder (``embed=None``) the meaning test is skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from hybrid.grounding import ENUMERATOR, numbers_in
from hybrid.text import content_words, sentence_spans, words

MIN_COVERAGE = 0.7
MIN_ORDER = 0.6
# Neighbouring content words of a sentence may stand this many content words apart in the
# evidence: 1, side by side. A window of 2 let 13% of shuffled sentences through, 1 lets 3%.
ORDER_WINDOW = 1
# Cosine to the closest evidence sentence, per embedder; see bench/support_check.py.
CALIBRATED_MIN_SIMILARITY = {"all-MiniLM-L6-v2": 0.5}
UNCALIBRATED_MIN_SIMILARITY = 0.5
_CACHE_SIZE = 4096
NEGATIONS = frozenset({"not", "no", "never", "none", "neither", "nor", "without", "cannot", "nothing"})
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("es", ""), ("s", ""), ("ing", ""), ("ed", ""), ("ly", ""))


def stem(word: str) -> str:
    """A light stem for matching: possessive and common suffixes off ("reports" -> "report")."""
    word = word.removesuffix("'s")
    if word[:1].isdigit():
        return word.replace(",", "")
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def _stems(text: str) -> list[str]:
    """The content words of ``text`` in order, stemmed."""
    keep = content_words(text)
    return [stem(w) for w in words(text) if w in keep]


@dataclass(frozen=True)
class Support:
    """The six tests of one sentence against its evidence, and the verdict."""

    supported: bool
    numbers: bool
    coverage: float
    order: float
    similarity: float | None  # None when no embedder was given
    polarity: bool = True  # negates exactly when its closest evidence sentence does
    unswapped: bool = True  # no word of it replaces another between the same neighbours


def min_similarity_for(embedder: str) -> float:
    """The meaning threshold calibrated for ``embedder``, or a cautious default."""
    return CALIBRATED_MIN_SIMILARITY.get(embedder, UNCALIBRATED_MIN_SIMILARITY)


class SupportCheck:
    """Checks sentences against the texts they cite (see the module docstring).

    Args:
        embed: texts -> L2-normalised rows (an ``ingest.Embedder``'s ``embed``), or None to
            skip the meaning test. Embeddings are cached by text.
        min_similarity: the meaning threshold (``min_similarity_for`` the embedder).
    """

    def __init__(
        self,
        embed: Callable[[Sequence[str]], np.ndarray] | None,
        min_similarity: float = UNCALIBRATED_MIN_SIMILARITY,
        min_coverage: float = MIN_COVERAGE,
        min_order: float = MIN_ORDER,
    ) -> None:
        self.embed = embed
        self.min_similarity = min_similarity
        self.min_coverage = min_coverage
        self.min_order = min_order
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def supports(self, sentence: str, texts: Sequence[str]) -> Support:
        """The verdict on ``sentence`` (markers removed) against ``texts`` (what it cites)."""
        sentence = ENUMERATOR.sub("", sentence).strip()
        pieces = [" ".join(t[a:b].split()) for t in texts for a, b in units(t)]
        evidence = " ".join(texts)
        numbers = numbers_in(sentence) <= numbers_in(evidence)
        claimed = _stems(sentence)
        known = {stem(w) for w in content_words(evidence)}
        coverage = sum(w in known for w in claimed) / len(claimed) if claimed else 0.0
        piece_stems = [_stems(u) for u in pieces]
        order = _order(claimed, piece_stems)
        overlap = [len(set(claimed).intersection(p)) for p in piece_stems]
        closest = pieces[overlap.index(max(overlap))] if pieces else ""
        polarity = _negates(sentence) == _negates(closest)
        unswapped = not _swapped(claimed, known, piece_stems)
        similarity = None
        if self.embed is not None and pieces:
            vectors = self._embedded([sentence, *pieces])
            similarity = float(np.max(vectors[1:] @ vectors[0]))
        supported = (
            numbers
            and polarity
            and unswapped
            and coverage >= self.min_coverage
            and order >= self.min_order
            and (similarity is None or similarity >= self.min_similarity)
        )
        return Support(supported, numbers, coverage, order, similarity, polarity, unswapped)

    def _embedded(self, texts: Sequence[str]) -> np.ndarray:
        assert self.embed is not None
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        found = dict(zip(missing, np.asarray(self.embed(missing), dtype=np.float32), strict=True)) if missing else {}
        rows = np.stack([found[t] if t in found else self._vectors[t] for t in texts])
        self._vectors.update(found)
        while len(self._vectors) > _CACHE_SIZE:
            self._vectors.popitem(last=False)
        return rows


def _negates(text: str) -> bool:
    return any(w in NEGATIONS or w.endswith("n't") for w in words(text))


def _swapped(claimed: Sequence[str], known: set[str], pieces: Sequence[Sequence[str]]) -> bool:
    """Whether a word of ``claimed`` missing from the evidence (``known``) stands between two
    neighbours that an evidence unit has around another word (only one neighbour at an edge)."""
    last = len(claimed) - 1
    if last < 1:
        return False
    for i, word in enumerate(claimed):
        if word in known:
            continue
        left = claimed[i - 1] if i > 0 else None
        right = claimed[i + 1] if i < last else None
        for piece in pieces:
            for j in range(len(piece)):
                before = piece[j - 1] if j > 0 else None
                after = piece[j + 1] if j + 1 < len(piece) else None
                if (left is None or before == left) and (right is None or after == right):
                    return True
    return False


def _order(claimed: Sequence[str], pieces: Sequence[Sequence[str]]) -> float:
    """Share of neighbouring pairs of ``claimed`` that some unit has in the same order, at most
    ``ORDER_WINDOW`` words apart; 1.0 for fewer than two words."""
    if len(claimed) < 2:
        return 1.0
    pairs: set[tuple[str, str]] = set()
    for piece in pieces:
        for i, word in enumerate(piece):
            pairs.update((word, later) for later in piece[i + 1 : i + 1 + ORDER_WINDOW])
    return sum(pair in pairs for pair in pairwise(claimed)) / (len(claimed) - 1)


def units(text: str) -> list[tuple[int, int]]:
    """Sentences of a passage, and each line of a table block on its own (a row of figures)."""
    spans = []
    for a, b in sentence_spans(text, wrapped=True):
        block = text[a:b]
        lines = block.split("\n")
        if len(lines) > 2 and sum(bool(numbers_in(line)) for line in lines) >= len(lines) / 2:
            offset = a
            for line in lines:
                if line.strip():
                    spans.append((offset, offset + len(line)))
                offset += len(line) + 1
        else:
            spans.append((a, b))
    return spans
