"""Pipeline: retrieval, refusal, generation and citation wired together (tiny model, fake embedder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid import REFUSAL, AskOptions, BadRequestError, NotFoundError


class ScriptedGenerator:
    """Answers with a fixed text, so citation wiring can be checked exactly."""

    def __init__(self, text: str) -> None:
        self.text, self.prompts = text, []

    def generate(self, messages, **_):
        from tune import GenerationResult

        self.prompts.append(messages)
        return GenerationResult(text=self.text, prompt_tokens=1, completion_tokens=1, seconds=0.0)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages, **_):
        """The same text in word-sized pieces, as ``tune.Generator.stream`` yields them."""
        self.prompts.append(messages)
        words = self.text.split(" ")
        yield from (word if i == 0 else f" {word}" for i, word in enumerate(words))


def test_search_finds_the_right_file_and_page(pipeline) -> None:
    hits = pipeline.search("fuel selector empty tank engine power", k=3)
    assert Path(hits[0].source).name == "engine report.pdf" and hits[0].page == 2
    assert hits[0].score >= hits[-1].score


def test_off_corpus_question_is_refused_without_generating(pipeline) -> None:
    answer = pipeline.ask("Which koala subspecies sings opera loudly?")
    assert answer.route == "refuse" and answer.answer == REFUSAL
    assert answer.citations == [] and answer.timings["generate_ms"] == 0


def test_covered_question_is_answered_with_page_citations(pipeline, monkeypatch) -> None:
    scripted = ScriptedGenerator("The engine lost power because of fuel starvation [1]. No one was injured.")
    monkeypatch.setattr(pipeline, "generator", lambda adapter: scripted)
    answer = pipeline.ask("Why did the engine lose power?")
    assert answer.route == "rag"
    prompt = scripted.prompts[0][1]["content"]
    assert "[1] (engine report.pdf, page 2)" in prompt
    pages = {(Path(c.source).name, c.page) for c in answer.citations}
    assert ("engine report.pdf", 2) in pages
    for c in answer.citations:
        assert c.quote in pipeline.index().chunk(c.chunk_id).text


def test_real_generation_returns_the_contract_shape(pipeline) -> None:
    answer = pipeline.ask("Why did the engine lose power?").to_dict()
    assert {"answer", "citations", "route", "grounded", "adapter", "timings"} <= set(answer)
    assert set(answer) - {"answer", "citations", "route", "grounded", "adapter", "timings"} == {"reason", "sentences"}
    assert answer["route"] == "rag" and answer["adapter"] is None
    retrieved = {h.chunk_id for h in pipeline.search("Why did the engine lose power?")}
    assert answer["citations"], "a random model cites nothing, so the extractive fallback must"
    assert {c["chunk_id"] for c in answer["citations"]} <= retrieved
    assert answer["timings"]["generate_ms"] > 0


def test_bad_requests_raise_clear_errors(pipeline) -> None:
    with pytest.raises(BadRequestError, match="empty"):
        pipeline.ask("   ")
    with pytest.raises(NotFoundError):
        pipeline.ask("Why did the engine lose power?", adapter="nosuch")
    for options, named in [({"k": 0}, "k:"), ({"k": "3"}, "k:"), ({"max_new_tokens": 10**9}, "max_new_tokens:"),
                           ({"pages": (0, 2)}, "pages"), ({"unsupported": "ignore"}, "unsupported:"), ({"top": 3}, "top:")]:
        with pytest.raises(BadRequestError, match=named):
            pipeline.ask("Why did the engine lose power?", **options)


def test_ask_takes_its_options_as_a_record_and_keywords_override_it(pipeline, monkeypatch) -> None:
    scripted = ScriptedGenerator("The engine lost power because of fuel starvation [1].")
    monkeypatch.setattr(pipeline, "generator", lambda adapter: scripted)
    question = "Why did the engine lose power?"
    options = AskOptions(k=1, sources=("no such report.pdf",))
    with pytest.raises(BadRequestError):  # a source filter that matches nothing says so
        pipeline.ask(question, options)
    answer = pipeline.ask(question, options, sources=["engine report.pdf"])
    assert answer.route == "rag" and len(scripted.prompts) == 1
    assert {Path(c.source).name for c in answer.citations} == {"engine report.pdf"}
    # The stream takes the same record and ends with the same answer.
    events = list(pipeline.ask_stream(question, options, sources=["engine report.pdf"]))
    assert events[-1] == ("answer", events[-1][1]) and events[-1][1].answer == answer.answer


def test_search_without_an_index_says_how_to_create_one(home) -> None:
    from hybrid import Pipeline, load_settings

    with pytest.raises(NotFoundError, match="ingest"):
        Pipeline(load_settings()).search("anything")


def test_question_about_a_name_absent_from_the_collection_is_refused(pipeline) -> None:
    assert pipeline.ask("Why did the engine of the Zeppelin lose power?").route == "refuse"
    assert pipeline.ask("Why did the engine lose power?").route == "rag"


def test_documents_about_the_named_subject_come_first(home, tmp_path, fake_embedder) -> None:
    from hybrid import Pipeline, load_settings
    from tests.support.pdfs import make_pdf

    folder = tmp_path / "filings"
    folder.mkdir()
    # The competitor filing matches the wording better; the Acme filing is about Acme.
    make_pdf(folder / "rival.pdf", ["How did the gross margin change? The gross margin change came from lower costs, unlike Acme."])
    make_pdf(folder / "acme.pdf", ["Acme Corporation quarterly report. Acme sells widgets. Acme ships them worldwide.",
                                   "Percentage of sales kept after costs increased this quarter."])
    pipe = Pipeline(load_settings(adapter="none"), embedder=fake_embedder)
    pipe.ingest([folder])
    dense = pipe.index().search("How did Acme's gross margin change?", k=3)
    assert Path(dense[0].source).name == "rival.pdf"  # similarity alone picks the competitor
    hits = pipe.search("How did Acme's gross margin change?", k=3)
    assert Path(hits[0].source).name == "acme.pdf"
    assert {h.chunk_id for h in hits} == {h.chunk_id for h in dense}


def test_documents_whose_file_name_the_question_names_come_first(home, tmp_path, fake_embedder) -> None:
    from hybrid import Pipeline, load_settings
    from tests.support.pdfs import make_pdf

    folder = tmp_path / "filings"
    folder.mkdir()
    make_pdf(folder / "2023 Q3 Acme.pdf", ["Acme quarterly report. Net sales were 90 million dollars in the quarter."])
    make_pdf(folder / "2022 Q3 Acme.pdf", ["Acme quarterly report. Net sales were 80 million dollars in the quarter."])
    make_pdf(folder / "2023 Q1 Acme.pdf", ["Acme quarterly report. Net sales were 70 million dollars in the quarter."])
    pipe = Pipeline(load_settings(adapter="none"), embedder=fake_embedder)
    pipe.ingest([folder])
    for question, name in [("What were Acme's net sales in Q3 2022?", "2022 Q3 Acme.pdf"),
                           ("What were net sales in the first quarter of 2023?", "2023 Q1 Acme.pdf")]:
        assert Path(pipe.search(question, k=3)[0].source).name == name
        assert len(pipe.search(question, k=3)) == 3  # first, not only


def test_an_adapters_house_boilerplate_comes_from_the_examples_it_learnt(home, tmp_path) -> None:
    import json

    from hybrid import Pipeline, load_settings
    from hybrid.grounding import house_key
    from tune import AdapterVersion

    closing = "This draft is for internal medical review and does not replace the approved product information."
    folder = tmp_path / "v1"
    folder.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Reply number {i} about the pump. {closing}"}]} for i in range(4)]
    (folder / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pipe = Pipeline(load_settings())
    assert pipe.house_sentences(AdapterVersion("house", 1, folder)) == {house_key(closing)}
    assert pipe.house_sentences(AdapterVersion("house", 2, tmp_path / "no-examples")) == frozenset()
    assert pipe.house_sentences(None) == frozenset()
