"""Records the hybrid core returns: an answer and the citations that back it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

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
    """The answer to one question, in the shape of ``hybrid ask --json`` and ``POST /v1/query``."""

    answer: str
    citations: list[Citation]
    route: Route
    grounded: bool
    adapter: str | None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "route": self.route,
            "grounded": self.grounded,
            "adapter": self.adapter,
            "timings": dict(self.timings),
        }
