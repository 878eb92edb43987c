"""The extractive fallback quotes the passage sentences that match the question."""

from __future__ import annotations

from ingest import Hit

from hybrid.citations import cite
from hybrid.extractive import extract_answer

HITS = [
    Hit("/a.pdf", 2, "a:p2:c0", 0.7, "The crew landed safely. The engine lost power because of fuel starvation over the lake."),
    Hit("/b.pdf", 5, "b:p5:c0", 0.6, "Fuel starvation happens when the selected tank runs dry."),
]


def test_quotes_best_matching_sentences_with_their_passage_markers() -> None:
    text = extract_answer("Why did the engine lose power over the lake?", HITS)
    assert text is not None and "The engine lost power because of fuel starvation over the lake [1]." in text
    cited = cite(text, HITS)
    assert cited.grounded and cited.citations[0].page == 2


def test_nothing_in_common_gives_none() -> None:
    assert extract_answer("Who painted the ceiling?", HITS) is None


def test_pipeline_falls_back_when_the_model_cites_nothing(pipeline, monkeypatch) -> None:
    from tests.hybrid.test_pipeline import ScriptedGenerator

    monkeypatch.setattr(pipeline, "generator", lambda adapter: ScriptedGenerator("The sources I provided are: many."))
    answer = pipeline.ask("Why did the engine lose power?")
    assert answer.route == "rag" and answer.grounded
    assert answer.citations and answer.citations[0].page == 2
    assert "fuel starvation" in answer.answer


def test_pdf_line_wrapping_does_not_cut_sentences_and_headings_are_skipped() -> None:
    hit = Hit("/c.pdf", 3, "c:p3:c0", 0.8,
              "What happens to a PDF that cannot be read\nA PDF that cannot be read is reported in\nfiles_failed with the reason and skipped.")
    text = extract_answer("What happens to a PDF that cannot be read?", [hit])
    assert text == "From the documents: A PDF that cannot be read is reported in files_failed with the reason and skipped [1]."
    assert cite(text, [hit]).citations[0].quote.endswith("reason and skipped.")
