"""Records the hybrid core returns: an answer and the citations that back it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hybrid.grounding import SentenceCheck

Route = Literal["rag", "style", "refuse"]


@dataclass(frozen=True)
class Citation:
    """A source an answer cites as ``[n]``: the chunk, its file and page, and a quote from it."""

    n: int
    source: str
    page: int
    chunk_id: str
    quote: str


@dataclass
class Answer:
    """The answer to one question, in the shape of ``hybrid ask --json`` and ``POST /v1/query``.

    Attributes:
        route: ``rag`` (answered from retrieved passages), ``style`` (a rewrite of text the
            user supplied, no retrieval) or ``refuse``.
        grounded: every sentence left in ``answer`` passed the grounding check (and, on the
            ``rag`` route, something is cited).
        reason: why the router chose this route, in words (a refusal says what was missing).
        sentences: the grounding check of each generated sentence, dropped ones included.
        prompt_tokens, completion_tokens: the generator's token counts, when it reported them
            (not part of the JSON; the OpenAI-compatible route reports them as ``usage``).
    """

    answer: str
    citations: list[Citation]
    route: Route
    grounded: bool
    adapter: str | None
    timings: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    sentences: list[SentenceCheck] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "route": self.route,
            "grounded": self.grounded,
            "adapter": self.adapter,
            "timings": dict(self.timings),
            "reason": self.reason,
            "sentences": [s.to_dict() for s in self.sentences],
        }
