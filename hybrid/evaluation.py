"""``hybrid eval``: a scorecard of answers to the user's own questions, beside another system's.

A *system* is anything that answers a question with a ``Reply``: our pipeline under some
settings (``pipeline_system``), or a reference such as the plain LangChain RAG in
``bench/answers.py``. ``run`` asks every system every question in turn (so a busy machine slows
them alike) and ``Scorecard`` sums up, with the measures of ``hybrid.scoring``:

- retrieval: document and page hit@k and MRR where the QA set has gold sources and pages;
- answers: token F1, gold-word recall, recall of gold words beyond the question, numbers
  matched; the share of answer sentences that the passages they cite support (the strict
  check of ``hybrid.grounding``), the share of valid citations, the answer's length;
- refusals: off-corpus questions refused, covered questions refused;
- latency p50/p95, prefill p50, and tokens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hybrid import scoring
from hybrid.qa import QAItem, is_gold
from hybrid.text import sentence_spans

if TYPE_CHECKING:
    from hybrid.pipeline import Pipeline
    from hybrid.support import SupportCheck

# Questions no document collection of a team is likely to answer, for the refusal measure when
# the user gives no --off-corpus file. A collection that does cover one of them should pass its own.
OFF_CORPUS = (
    "What is the boiling point of mercury at sea level?",
    "Who won the 1998 FIFA World Cup?",
    "What is the recommended daily dose of vitamin C for adults?",
    "How many moons does Neptune have?",
    "What is the capital of Mongolia?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the airspeed of an unladen swallow?",
    "How do I bake sourdough bread at home?",
    "What year did the Berlin Wall fall?",
    "What is the half-life of carbon-14?",
)
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Passage:
    """A passage a system retrieved or cited."""

    source: str
    page: int
    text: str


@dataclass
class Reply:
    """What a system answered to one question: all the scorecard needs.

    Attributes:
        route: ``rag``, ``style`` or ``refuse``.
        passages: the passages retrieved for the question, best first.
        citations: what each ``[n]`` of the answer cites (a system that does not cite: empty;
            its sentences are then checked against all of ``passages``).
        valid_citations: how many of ``citations`` point at a real page and quote it verbatim
            (None for a system that does not cite).
        house: sentences the system writes by design (an adapter's disclaimer), not claims.
    """

    answer: str
    route: str
    passages: list[Passage]
    seconds: float
    citations: dict[int, Passage] = field(default_factory=dict)
    valid_citations: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prefill_seconds: float | None = None
    house: frozenset[str] = frozenset()


System = Callable[[str], Reply]


@dataclass
class Scored:
    """One question's reply and its measures (the JSON's ``questions`` rows)."""

    question: str
    gold: str
    reply: Reply
    measures: dict[str, Any]


def score(item: QAItem, reply: Reply, check: SupportCheck, k: int) -> Scored:
    """The measures of ``reply`` to ``item`` (retrieval over its top ``k`` passages)."""
    found = [(p.source, p.page) for p in reply.passages[:k]]
    doc_rank = scoring.first_rank(found, lambda s, p: is_gold(item, s)) if item.sources else None
    page_rank = scoring.first_rank(found, lambda s, p: is_gold(item, s, p)) if item.pages else None
    supported, claims = _faithfulness(reply, check)
    measures = {
        "route": reply.route,
        "doc_rank": doc_rank,
        "page_rank": page_rank,
        "token_f1": scoring.token_f1(reply.answer, item.answer),
        "gold_recall": scoring.gold_recall(reply.answer, item.answer),
        "beyond_question_recall": scoring.beyond_question_recall(reply.answer, item.answer, item.question),
        "numbers_matched": scoring.numbers_matched(reply.answer, item.answer),
        "claims": claims,
        "supported_claims": supported,
        "citations": len(reply.citations),
        "valid_citations": reply.valid_citations,
        "answer_words": len(reply.answer.split()),
        "seconds": reply.seconds,
        "prefill_seconds": reply.prefill_seconds,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
    }
    return Scored(item.question, item.answer, reply, measures)


def _faithfulness(reply: Reply, check: SupportCheck) -> tuple[int, int]:
    """(claims the cited passages support, claims) in the answer; a refusal has none."""
    from hybrid.grounding import house_key, is_claim

    if reply.route == "refuse":
        return 0, 0
    supported = claims = 0
    for a, b in sentence_spans(reply.answer):
        raw = reply.answer[a:b]
        sentence = _MARKER.sub("", raw).strip()
        if not is_claim(sentence) or house_key(sentence) in reply.house:
            continue
        cited = [int(n) for m in _MARKER.finditer(raw) for n in m.group(1).split(",")]
        texts = [reply.citations[n].text for n in cited if n in reply.citations]
        if not texts:  # uncited: what it could rest on is all it was given
            texts = [p.text for p in (reply.citations.values() if reply.citations else reply.passages)]
        claims += 1
        supported += check.supports(sentence, texts).supported
    return supported, claims


@dataclass
class Scorecard:
    """The measures of one system over a QA set (the JSON of ``hybrid eval``, less ``against``)."""

    name: str
    covered: list[Scored]
    off_corpus: list[Scored]
    k: int

    def to_dict(self, *, questions: bool = True) -> dict[str, Any]:
        rows = [s.measures for s in self.covered]
        answered = [m for m in rows if m["route"] != "refuse"]
        seconds = [m["seconds"] for m in rows + [s.measures for s in self.off_corpus]]
        claims = sum(m["claims"] for m in answered)
        citations = [m for m in answered if m["valid_citations"] is not None]
        body: dict[str, Any] = {
            "system": self.name,
            "n": len(rows),
            "k": self.k,
            "retrieval": _retrieval(rows, self.k),
            "answers": {
                "token_f1": scoring.mean([m["token_f1"] for m in rows]),
                "gold_recall": scoring.mean([m["gold_recall"] for m in rows]),
                "beyond_question_recall": scoring.mean([m["beyond_question_recall"] for m in rows]),
                "numbers_matched": scoring.mean([m["numbers_matched"] for m in rows]),
                "supported_sentences": sum(m["supported_claims"] for m in answered) / claims if claims else None,
                "valid_citations": (sum(m["valid_citations"] for m in citations) / sum(m["citations"] for m in citations)
                                    if citations and sum(m["citations"] for m in citations) else None),
                "answer_words": scoring.mean([m["answer_words"] for m in answered]),
            },
            "refusals": {
                "off_corpus_refused": scoring.mean([s.reply.route == "refuse" for s in self.off_corpus]),
                "covered_refused": scoring.mean([m["route"] == "refuse" for m in rows]),
            },
            "latency_ms": {
                "p50": _ms(scoring.percentile(seconds, 0.5)),
                "p95": _ms(scoring.percentile(seconds, 0.95)),
                "prefill_p50": _ms(scoring.percentile([m["prefill_seconds"] for m in rows if m["prefill_seconds"]], 0.5)),
            },
            "tokens": {
                "prompt": scoring.mean([m["prompt_tokens"] for m in rows]),
                "completion": scoring.mean([m["completion_tokens"] for m in rows]),
            },
        }
        if questions:
            body["questions"] = [_row(s) for s in self.covered] + [_row(s, off_corpus=True) for s in self.off_corpus]
        return body


def _retrieval(rows: Sequence[dict[str, Any]], k: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for level in ("doc", "page"):
        ranks = [m[f"{level}_rank"] for m in rows if m.get(f"{level}_gold")]
        out[f"{level}_hit_at_k"] = sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else None
        out[f"{level}_mrr"] = sum(1 / r for r in ranks if r) / len(ranks) if ranks else None
    out["mrr"] = out.pop("doc_mrr")
    return out


def _row(scored: Scored, *, off_corpus: bool = False) -> dict[str, Any]:
    keep = ("route", "doc_rank", "page_rank", "token_f1", "gold_recall", "beyond_question_recall",
            "numbers_matched", "claims", "supported_claims", "answer_words", "seconds")
    row = {"question": scored.question, "answer": scored.reply.answer, "off_corpus": off_corpus}
    row.update({key: _round(scored.measures.get(key)) for key in keep})
    return row


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run(
    systems: dict[str, System],
    items: Sequence[QAItem],
    off_corpus: Iterable[str],
    check: SupportCheck,
    k: int,
    progress: Callable[[str], None] | None = None,
) -> list[Scorecard]:
    """Ask each system every QA question and every off-corpus question, in turn.

    Args:
        systems: name -> system; the first is the one judged, the others its references.
        progress: called after each answer with a short line (for a progress bar).
    """
    off = list(off_corpus)
    cards = {name: Scorecard(name, [], [], k) for name in systems}
    for item in items:
        for name, system in systems.items():
            scored = score(item, system(item.question), check, k)
            scored.measures["doc_gold"], scored.measures["page_gold"] = bool(item.sources), bool(item.pages)
            cards[name].covered.append(scored)
            if progress:
                progress(name)
    for question in off:
        for name, system in systems.items():
            reply = system(question)
            cards[name].off_corpus.append(Scored(question, "", reply, {"seconds": reply.seconds, "route": reply.route}))
            if progress:
                progress(name)
    return list(cards.values())


def pipeline_system(pipeline: Pipeline, k: int | None = None) -> System:
    """``pipeline`` as a system: its search for the passages, its ``ask`` for the answer."""

    def answer(question: str) -> Reply:
        index = pipeline.index()
        passages = [Passage(h.source, h.page, h.text) for h in pipeline.search(question, k=k)]
        started = time.perf_counter()
        result = pipeline.ask(question, k=k)
        seconds = time.perf_counter() - started
        citations, valid = {}, 0
        for c in result.citations:
            chunk = index.chunk(c.chunk_id)
            text = chunk.text if chunk is not None else ""
            citations[c.n] = Passage(c.source, c.page, text)
            valid += bool(chunk) and chunk.source == c.source and chunk.page == c.page and _quoted(c.quote, text)
        prefill = result.timings.get("prefill_ms")
        return Reply(
            answer=result.answer, route=result.route, passages=passages, seconds=seconds,
            citations=citations, valid_citations=valid if result.citations else None,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            prefill_seconds=prefill / 1000 if prefill else None,
            house=pipeline.house_sentences(pipeline.adapters.resolve()),
        )

    return answer


def _quoted(quote: str, text: str) -> bool:
    return bool(quote.strip()) and " ".join(quote.split()) in " ".join(text.split())
