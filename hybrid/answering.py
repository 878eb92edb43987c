"""From a plan to an ``Answer``, in one line: generation, then the check and the citations.

One question goes through these steps in order, each taking the previous step's record:

1. ``hybrid.planning`` routes and retrieves (``hybrid.retrieval``, ``hybrid.guidance``,
   ``hybrid.evidence``) into a ``Plan``, or a refusal when there is nothing to say;
2. ``generate`` (or ``stream``) runs the plan's model on its messages: a ``Generation``;
3. ``finish`` checks and cites it (``hybrid.citations``, ``hybrid.grounding``): the citation
   repair and grounding check of the rag route, the rewrite check of the style route, the
   quoted fallback and the strict refusals; the result is the ``Answer``.

The quoted fallback, when no generated sentence is supported, is the best evidence sentences
(``hybrid.evidence``), never the opening of a passage, set in the adapter's house frame
(``hybrid.house``) so that it still reads in house style.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hybrid import guidance
from hybrid.citations import cite
from hybrid.extractive import LEAD, extract_answer
from hybrid.grounding import SentenceCheck, all_supported, check_rewrite, house_key, numbers_in
from hybrid.house import HouseFrame
from hybrid.records import Answer
from hybrid.text import content_words

if TYPE_CHECKING:
    import ingest
    from hybrid.engine import Generator
    from hybrid.evidence import Sentence
    from hybrid.support import SupportCheck

# Evidence sentences the quoted fallback gives.
FALLBACK_SENTENCES = 4
# ... and how far below the best one's score (hybrid.evidence: cosine + lexical + passage) the
# others may be. On every fifth SEC 10-Q question (39), none of the 115 candidate follow-up
# sentences lies beyond it, so those answers are unchanged; on the docs QA it leaves out 5 of 14
# follow-ups on 2 questions, sentences about other things (0.51-0.71 below the answer) that
# shared a word with the question.
FALLBACK_GAP = 0.5
# Content words that make a supported sentence an answer rather than a label (see _substantive).
SUBSTANTIVE_WORDS = 5


@dataclasses.dataclass
class Plan:
    """What ``Pipeline.ask`` will generate from: the route, the model, its messages and the evidence."""

    question: str
    route: str  # "rag" or "style"
    reason: str
    generator: Generator
    messages: list[dict[str, str]]
    hits: list[ingest.Hit]  # the passages shown to the model (rag)
    supplied: str | None  # the text to rewrite (style)
    adapter: str | None
    retrieve_ms: float
    drop: bool
    house: frozenset[str] = frozenset()  # the adapter's boilerplate (hybrid.grounding.house_sentences)
    evidence: Sequence[Sentence] = ()  # the evidence sentences, best first (hits then group them)
    check: SupportCheck | None = None  # the strict check (hybrid.support); None: word overlap only
    frame: HouseFrame = HouseFrame()  # the adapter's frame, for the quoted fallback


@dataclasses.dataclass(frozen=True)
class Generation:
    """What the model wrote for a plan, and what it took."""

    text: str
    generate_ms: float
    prefill_ms: float | None = None  # the prompt's processing, up to the first token (not streamed)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def generate(plan: Plan, max_new_tokens: int, strict: bool, cancel: threading.Event | None = None) -> Answer:
    """The whole reply for ``plan``, then ``finish``: the ``Answer``."""
    started = time.perf_counter()
    result = plan.generator.generate(plan.messages, max_new_tokens=max_new_tokens, cancel=cancel)
    generation = Generation(text=result.text, generate_ms=(time.perf_counter() - started) * 1000,
                            prefill_ms=result.first_token_seconds * 1000, prompt_tokens=result.prompt_tokens,
                            completion_tokens=result.completion_tokens)
    return finish(plan, generation, strict)


def stream(
    plan: Plan, max_new_tokens: int, strict: bool, cancel: threading.Event | None = None
) -> Iterator[tuple[str, Any]]:
    """``("token", str)`` as the model writes, then ``("answer", Answer)`` (see ``Pipeline.ask_stream``).

    With ``strict`` the reply is generated whole and checked first, so only the answer comes.
    """
    if strict:
        yield "answer", generate(plan, max_new_tokens, strict, cancel)
        return
    started = time.perf_counter()
    pieces = []
    for piece in plan.generator.stream(plan.messages, max_new_tokens=max_new_tokens, cancel=cancel):
        pieces.append(piece)
        yield "token", piece
    if cancel is not None and cancel.is_set():
        return  # nobody is reading any more: no answer to check
    generation = Generation(text="".join(pieces).strip(), generate_ms=(time.perf_counter() - started) * 1000)
    yield "answer", finish(plan, generation, strict)


def refusal(
    adapter: str | None,
    reason: str,
    retrieve_ms: float = 0.0,
    generate_ms: float = 0.0,
    sentences: Sequence[SentenceCheck] = (),
    text: str = guidance.REFUSAL,
) -> Answer:
    timings = {"retrieve_ms": round(retrieve_ms, 1), "generate_ms": round(generate_ms, 1)}
    return Answer(answer=text, citations=[], route="refuse", grounded=True, adapter=adapter, timings=timings, reason=reason,
                  sentences=list(sentences))


def _unsupported_reason(checks: Sequence[SentenceCheck], against: str) -> str:
    bad = [c for c in checks if not c.supported]
    if not bad:
        return "strict: the answer cites no passage"
    first = " ".join(bad[0].text.split())[:120]
    return f"strict: {len(bad)} of {len(checks)} sentences are not supported by {against} (first: \"{first}\")"


def finish(plan: Plan, generation: Generation, strict: bool) -> Answer:
    """Ground what the model wrote for ``plan``: cite and check it, drop or flag, or refuse.

    Args:
        strict: refuse rather than drop an unsupported sentence or fall back to quoting.
    """
    answer = _grounded(plan, generation.text, generation.generate_ms, strict)
    if generation.prefill_ms is not None:
        answer.timings["prefill_ms"] = round(generation.prefill_ms, 1)
    return answer.model_copy(update={"prompt_tokens": generation.prompt_tokens,
                                     "completion_tokens": generation.completion_tokens})


def _grounded(plan: Plan, text: str, generate_ms: float, strict: bool) -> Answer:
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
        return Answer(answer=kept, citations=[], route="style", grounded=grounded, adapter=plan.adapter, timings=timings,
                      reason=plan.reason, sentences=checks)
    cited = cite(text, plan.hits, drop_unsupported=drop, house=plan.house, check=plan.check, labels=plan.frame.labels)
    if strict and not cited.grounded:
        reason = _unsupported_reason(cited.sentences, "the passages they cite") if cited.sentences else "strict: the model generated no answer"
        return refusal(plan.adapter, reason, plan.retrieve_ms, generate_ms, cited.sentences)
    reason = plan.reason
    if not any(_substantive(c) for c in cited.sentences):
        # No claim supported (a small model talking about the sources, not from them, or
        # obeying text planted in one): quote the passages instead, or refuse.
        generated = [s.model_copy(update={"kept": False}) for s in cited.sentences]
        quoted = _quote_evidence(plan) if plan.evidence else extract_answer(plan.question, plan.hits)
        if quoted is None:
            return refusal(
                plan.adapter, "no sentence of the generated answer is supported by the passages", plan.retrieve_ms, generate_ms, generated
            )
        cited = cite(quoted, plan.hits, house=plan.house | _frame_sentences(plan.frame), check=plan.check,
                     labels=(*plan.frame.labels, LEAD))
        cited.sentences[:0] = generated
        reason = f"{reason}; no generated sentence was supported, so the answer quotes the evidence"
    return Answer(answer=cited.text, citations=cited.citations, route="rag", grounded=cited.grounded, adapter=plan.adapter,
                  timings=timings, reason=reason, sentences=cited.sentences)


def _substantive(check: SentenceCheck) -> bool:
    """A kept, supported claim that says something: five content words, or a number and three.

    A small model's list of bare labels ("- **Liquidity Risk**:") cites the evidence's words
    without saying anything; such an answer goes to the quoted fallback too.
    """
    if not (check.kept and check.claim and check.supported):
        return False
    words = content_words(check.text)
    return len(words) >= SUBSTANTIVE_WORDS or (bool(numbers_in(check.text)) and len(words) >= 3)


def _quote_evidence(plan: Plan) -> str:
    """The best evidence sentences, each with the marker of its passage, in the house frame.

    The best one always; the others only when they share words with the question, so that a
    passage's acknowledgements or introduction never stand in for an answer, and score within
    ``FALLBACK_GAP`` of the best, so that a sentence about something else does not follow it.
    """
    numbers = {hit.chunk_id: n for n, hit in enumerate(plan.hits, start=1)}
    best, *rest = plan.evidence[:FALLBACK_SENTENCES]
    chosen = [best, *(s for s in rest if s.overlap > 0 and best.score - s.score <= FALLBACK_GAP)]
    sentences = [f"{s.text.rstrip('.')} [{numbers[s.hit.chunk_id]}]." for s in chosen]
    if plan.frame:
        return plan.frame.wrap(sentences)
    return f"{LEAD} " + " ".join(sentences)


def _frame_sentences(frame: HouseFrame) -> frozenset[str]:
    return frozenset(house_key(text) for text in (frame.opening, frame.closing) if text)
