"""Evidence first, on generated PDFs: the sentence that answers is shown and quoted, never the
opening of the passage; the quoted fallback keeps the house frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid import Pipeline, evidence, load_settings
from hybrid.house import HouseFrame
from tests.hybrid.test_pipeline import ScriptedGenerator
from tests.support.pdfs import make_pdf

PAGE = (
    "Benchmark Suite Overview\n"
    "We thank the authors of the datasets and the reviewers for their helpful comments on this work. "
    "This section introduces the suite. "
    "The benchmark includes three tasks: contract question answering, clause summarisation and legal translation. "
    "Each task has a public test set and a hidden one."
)
ANSWER = "The benchmark includes three tasks: contract question answering, clause summarisation and legal translation."
QUESTION = "Which tasks does the benchmark include?"


@pytest.fixture
def papers(home, tmp_path, fake_embedder) -> Pipeline:
    folder = tmp_path / "papers"
    folder.mkdir()
    make_pdf(folder / "suite.pdf", ["Contents and front matter of the report.", PAGE])
    make_pdf(folder / "other.pdf", ["Wind turbines convert kinetic energy into electricity for the grid."])
    pipe = Pipeline(load_settings(adapter="none", min_score=0.1), embedder=fake_embedder)
    pipe.ingest([folder])
    return pipe


def test_the_sentence_that_answers_comes_first_and_openings_and_headings_never(papers) -> None:
    hits = papers.search(QUESTION, k=3)
    chosen = evidence.select(QUESTION, hits, papers.embedder.embed, 3)
    assert chosen[0].text == ANSWER and chosen[0].hit.page == 2
    texts = [s.text for s in chosen]
    assert "Benchmark Suite Overview" not in " ".join(texts)
    assert all(not t.startswith("We thank") for t in texts[:1])
    grouped = evidence.group(chosen)
    assert len({g.chunk_id for g in grouped}) == len(grouped)
    assert all(s.text in next(g.text for g in grouped if g.chunk_id == s.hit.chunk_id) for s in chosen)


def test_the_model_sees_the_evidence_and_a_nonsense_reply_falls_back_to_it(papers, monkeypatch) -> None:
    scripted = ScriptedGenerator("1. Pre-training tasks [1]. 2. Pre-feeling tasks and benchmark suites [1].")
    monkeypatch.setattr(papers, "generator", lambda adapter: scripted)
    answer = papers.ask(QUESTION)
    prompt = scripted.prompts[0][1]["content"]
    assert "Evidence:" in prompt and ANSWER in prompt and "(suite.pdf, page 2)" in prompt
    assert answer.route == "rag" and answer.grounded
    assert answer.answer.startswith("From the documents: The benchmark includes three tasks")
    assert "We thank" not in answer.answer
    assert (Path(answer.citations[0].source).name, answer.citations[0].page) == ("suite.pdf", 2)
    assert answer.citations[0].quote.rstrip(".") in " ".join(papers.index().chunk(answer.citations[0].chunk_id).text.split())
    assert any(not s.kept for s in answer.sentences)  # the nonsense was checked and left out
    assert "prefill_ms" in answer.timings


def test_a_supported_reply_is_kept_and_cited(papers, monkeypatch) -> None:
    scripted = ScriptedGenerator("The benchmark includes three tasks: contract question answering, clause summarisation and legal translation [1].")
    monkeypatch.setattr(papers, "generator", lambda adapter: scripted)
    answer = papers.ask(QUESTION)
    assert answer.answer == ANSWER[:-1] + " [1]." and answer.grounded
    assert "quotes the evidence" not in answer.reason


def test_the_fallback_is_set_in_the_house_frame(papers, monkeypatch) -> None:
    closing = "Please check the cited pages before relying on this summary."
    frame = HouseFrame(labels=("Answer:", "Details:"), closing=closing)
    monkeypatch.setattr(papers.generators, "house", lambda version: (frozenset({closing.lower().rstrip(".")}), frame))
    monkeypatch.setattr(papers, "generator", lambda adapter: ScriptedGenerator("I like turtles and benchmarks."))
    answer = papers.ask(QUESTION).answer
    assert answer.startswith("Answer: The benchmark includes three tasks") and answer.endswith(closing)
    assert "We thank" not in answer  # a second sentence only when it shares words with the question


def test_evidence_off_shows_whole_passages(papers, monkeypatch) -> None:
    papers.settings = papers.settings.model_copy(update={"evidence": 0})
    scripted = ScriptedGenerator("The benchmark includes three tasks [1].")
    monkeypatch.setattr(papers, "generator", lambda adapter: scripted)
    papers.ask(QUESTION)
    assert "Sources:" in scripted.prompts[0][1]["content"] and "We thank" in scripted.prompts[0][1]["content"]


def test_the_fallback_leaves_out_sentences_far_below_the_best(papers) -> None:
    from hybrid.answering import FALLBACK_GAP, Plan, _quote_evidence

    hit = papers.search(QUESTION, k=1)[0]

    def sentence(text: str, score: float, overlap: float) -> evidence.Sentence:
        return evidence.Sentence(text=text, hit=hit, score=score, overlap=overlap)

    best = sentence(ANSWER, 1.3, 0.8)
    close = sentence("Each task has a public test set and a hidden one.", 1.3 - FALLBACK_GAP + 0.01, 0.3)
    far = sentence("Earlier tasks of the suite are replayed in training.", 1.3 - FALLBACK_GAP - 0.01, 0.4)
    unrelated = sentence("This section introduces the suite.", 1.25, 0.0)
    plan = Plan(question=QUESTION, route="rag", reason="", generator=None, messages=[], hits=[hit], supplied=None,
                adapter=None, retrieve_ms=0.0, drop=True, evidence=[best, close, far, unrelated])
    quoted = _quote_evidence(plan)
    assert ANSWER.rstrip(".") in quoted and "public test set" in quoted
    assert "replayed" not in quoted and "introduces" not in quoted
