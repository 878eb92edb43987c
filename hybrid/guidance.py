"""The fine-tuning-versus-retrieval guidance, applied at serve time.

Facts come from retrieved passages, never from the adapter. So a question is answered only when
retrieval finds a passage relevant enough; otherwise the answer is a plain refusal. "Relevant
enough" is a cosine-similarity threshold calibrated per embedder on questions whose answers are
in a corpus and on questions that no document covers (``bench/calibrate_refusal.py``; figures in
docs/concepts/refusal.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest import Hit

REFUSAL = "The documents do not cover this question, so I cannot answer it from them."

# Best-passage cosine similarity below which a question counts as not covered, per embedder.
# all-MiniLM-L6-v2: calibrated with bench/calibrate_refusal.py (see docs/concepts/refusal.md).
CALIBRATED_MIN_SCORE = {"all-MiniLM-L6-v2": 0.30}
# For an embedder we have not calibrated: a conservative value for normalised sentence embedders.
UNCALIBRATED_MIN_SCORE = 0.30


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


def decide(hits: Sequence["Hit"], min_score: float) -> Decision:
    """Answer only when the best retrieved passage clears the calibrated threshold."""
    if not hits:
        return Decision(False, "the index returned no passages")
    best = hits[0].score
    if best < min_score:
        return Decision(False, f"best passage scores {best:.2f}, below the threshold {min_score:.2f}")
    return Decision(True, f"best passage scores {best:.2f} (threshold {min_score:.2f})")
