"""From a generated reply to an ``Answer``: the plan a reply is generated from, and its grounding.

``Pipeline.ask`` and ``Pipeline.ask_stream`` route and retrieve into a ``Plan`` (or a refusal),
generate from it, then call ``finish``: the citation repair and grounding check of the rag
route, the rewrite check of the style route, the quoted fallback, and the strict refusals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hybrid import guidance
from hybrid.citations import cite
from hybrid.extractive import extract_answer
from hybrid.grounding import SentenceCheck, all_supported, check_rewrite
from hybrid.records import Answer

if TYPE_CHECKING:
    import ingest
    import tune


@dataclasses.dataclass
class Plan:
    """What ``Pipeline.ask`` will generate from: the route, the model, its messages and the evidence."""

    question: str
    route: str  # "rag" or "style"
    reason: str
    generator: tune.Generator
    messages: list[dict[str, str]]
    hits: list[ingest.Hit]  # the passages shown to the model (rag)
    supplied: str | None  # the text to rewrite (style)
    adapter: str | None
    retrieve_ms: float
    drop: bool
    house: frozenset[str] = frozenset()  # the adapter's boilerplate (hybrid.grounding.house_sentences)


def refusal(
    adapter: str | None,
    reason: str,
    retrieve_ms: float = 0.0,
    generate_ms: float = 0.0,
    sentences: Sequence[SentenceCheck] = (),
    text: str = guidance.REFUSAL,
) -> Answer:
    timings = {"retrieve_ms": round(retrieve_ms, 1), "generate_ms": round(generate_ms, 1)}
    return Answer(text, [], "refuse", True, adapter, timings, reason, list(sentences))


def with_usage(answer: Answer, result: tune.GenerationResult) -> Answer:
    """``answer`` with the generator's token counts (a streamed reply has none to report)."""
    return dataclasses.replace(answer, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)


def _unsupported_reason(checks: Sequence[SentenceCheck], against: str) -> str:
    bad = [c for c in checks if not c.supported]
    if not bad:
        return "strict: the answer cites no passage"
    first = " ".join(bad[0].text.split())[:120]
    return f"strict: {len(bad)} of {len(checks)} sentences are not supported by {against} (first: \"{first}\")"


def finish(plan: Plan, text: str, generate_ms: float, strict: bool) -> Answer:
    """Ground the generated ``text`` of ``plan``: cite and check it, drop or flag, or refuse.

    Args:
        generate_ms: how long the generation took, for ``timings``.
        strict: refuse rather than drop an unsupported sentence or fall back to quoting.
    """
    timings = {"retrieve_ms": round(plan.retrieve_ms, 1), "generate_ms": round(generate_ms, 1)}
    drop = plan.drop and not strict
    if plan.route == "style":
        kept, checks = check_rewrite(text, plan.supplied or "", drop=drop, house=plan.house)
        grounded = all_supported(checks)
        if strict and not grounded:
            reason = _unsupported_reason(checks, "the text you supplied")
            return refusal(plan.adapter, reason, plan.retrieve_ms, generate_ms, checks, guidance.REWRITE_REFUSAL)
        if not kept.strip():
            reason = "every sentence of the rewrite added facts that are not in the text you supplied"
            return refusal(plan.adapter, reason, plan.retrieve_ms, generate_ms, checks, guidance.REWRITE_REFUSAL)
        return Answer(kept, [], "style", grounded, plan.adapter, timings, plan.reason, checks)
    cited = cite(text, plan.hits, drop_unsupported=drop, house=plan.house)
    if strict and not cited.grounded:
        reason = _unsupported_reason(cited.sentences, "the passages they cite") if cited.sentences else "strict: the model generated no answer"
        return refusal(plan.adapter, reason, plan.retrieve_ms, generate_ms, cited.sentences)
    reason = plan.reason
    if not cited.supported_sentences:
        # No claim supported (a small model talking about the sources, not from them, or
        # obeying text planted in one): quote the passages instead, or refuse.
        generated = [dataclasses.replace(s, kept=False) for s in cited.sentences]
        extracted = extract_answer(plan.question, plan.hits)
        if extracted is None:
            return refusal(
                plan.adapter, "no sentence of the generated answer is supported by the passages", plan.retrieve_ms, generate_ms, generated
            )
        cited = cite(extracted, plan.hits)
        cited.sentences[:0] = generated
        reason = f"{reason}; no generated sentence was supported, so the answer quotes the passages"
    return Answer(cited.text, cited.citations, "rag", cited.grounded, plan.adapter, timings, reason, cited.sentences)
