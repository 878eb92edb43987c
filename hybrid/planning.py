"""Route and retrieve: one question and its ``AskOptions`` become a ``Plan``, or a refusal.

The first step of the answering line (``hybrid.answering`` runs the rest):

1. the router (``hybrid.router``) sends a request that only asks to rewrite, format,
   summarise or translate text it supplies to the adapter without retrieval (``"style"``);
2. everything else is retrieved for (``Pipeline.search``), and refused when no passage clears
   the calibrated relevance threshold or the question names something the collection never
   mentions (``hybrid.guidance.decide``);
3. retrieved text is data: sentences that address the assistant are neutralised
   (``hybrid.prompt.neutralise``) before the model, the citations or the fallback see them;
4. with ``settings.evidence``, the model is shown only the sentences that answer
   (``hybrid.evidence``), grouped by passage.

The parts come from the pipeline through ``Parts``, so that what a caller (or a test)
replaces on the pipeline, such as its ``search`` or ``generator``, is what the plan uses.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from hybrid import guidance, router
from hybrid.answering import Plan, refusal
from hybrid.collection import checked_text
from hybrid.prompt import build_evidence_messages, build_messages, build_style_messages, neutralise
from hybrid.records import Answer, AskOptions

if TYPE_CHECKING:
    import ingest
    import tune
    from hybrid.adapters import Adapters
    from hybrid.config import Settings
    from hybrid.engine import Generator
    from hybrid.generators import Generators
    from hybrid.support import SupportCheck

logger = logging.getLogger("hybrid")


class Parts(Protocol):
    """What planning uses of the pipeline."""

    settings: Settings
    adapters: Adapters
    generators: Generators

    @property
    def embedder(self) -> ingest.Embedder: ...

    def index(self) -> ingest.Index: ...

    def reranker(self) -> ingest.Reranker | None: ...

    def search(
        self, query: str, *, k: int | None = None, sources: Sequence[str] | None = None,
        pages: tuple[int | None, int | None] | None = None,
    ) -> list[ingest.Hit]: ...

    def generator(self, adapter: tune.AdapterVersion | None) -> Generator: ...

    def support_check(self) -> SupportCheck: ...


def plan(parts: Parts, question: str, options: AskOptions) -> Plan | Answer:
    """The plan for the generation, or the refusal when there is nothing to say (see the module)."""
    question = checked_text(question, "question")
    version = parts.adapters.resolve(options.adapter, allow_path=options.allow_path)
    adapter_ref = version.ref if version is not None else None
    decision = router.route(question)
    drop = options.unsupported == "drop"
    if decision.route == "style":
        logger.info("style: %s", decision.reason)
        return Plan(question=question, route="style", reason=decision.reason, generator=parts.generator(version),
                    messages=build_style_messages(question), hits=[], supplied=decision.supplied, adapter=adapter_ref,
                    retrieve_ms=0.0, drop=drop, house=parts.generators.house(version)[0])
    started = time.perf_counter()
    hits = parts.search(question, k=options.k, sources=options.sources, pages=options.pages)
    retrieve_ms = (time.perf_counter() - started) * 1000
    threshold = guidance.min_score_for(parts.embedder.name, parts.settings.min_score)
    missing = [name for name in guidance.names_in(question) if not parts.index().mentions(name)]
    relevance = guidance.decide(hits, threshold, missing)
    logger.info("%s: %s", "answer" if relevance.answer else "refuse", relevance.reason)
    if not relevance.answer:
        return refusal(adapter_ref, relevance.reason, retrieve_ms)
    relevant = [neutralise(h) for h in hits if h.score >= threshold]
    house, frame = parts.generators.house(version)
    planned = Plan(question=question, route="rag", reason=relevance.reason, generator=parts.generator(version),
                   messages=build_messages(question, relevant), hits=relevant, supplied=None, adapter=adapter_ref,
                   retrieve_ms=retrieve_ms, drop=drop, house=house, check=parts.support_check(), frame=frame)
    if parts.settings.evidence:
        from hybrid import evidence  # numpy: only for answers

        started = time.perf_counter()
        reranker = parts.reranker()
        chosen = evidence.select(question, relevant, parts.embedder.embed, parts.settings.evidence,
                                 reranker.scores if reranker is not None else None)
        if chosen:
            shown = evidence.group(chosen)
            planned = dataclasses.replace(planned, messages=build_evidence_messages(question, shown), hits=shown,
                                          evidence=chosen, retrieve_ms=retrieve_ms + (time.perf_counter() - started) * 1000)
    return planned


def token_limit(planned: Plan, requested: int | None, settings: Settings) -> int:
    """The reply's token limit: the request's or ``max_new_tokens``; for an answer from evidence
    sentences at most ``evidence_tokens``, plus what the adapter's house frame (opening, labels,
    closing) takes, so the frame is never what gets cut."""
    limit = requested or settings.max_new_tokens
    if planned.evidence:
        frame = planned.frame
        extra = planned.generator.count_tokens(" ".join([frame.opening, *frame.labels, frame.closing])) if frame else 0
        limit = min(limit, settings.evidence_tokens + extra)
    return limit


__all__ = ["Parts", "plan", "token_limit"]
