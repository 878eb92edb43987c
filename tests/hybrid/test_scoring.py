"""The scorecard's measures on hand-made cases, and reading QA sets."""

from __future__ import annotations

import json

import pytest

from hybrid import BadRequestError
from hybrid.qa import QAItem, is_gold, label_pages, read_qa, read_questions
from hybrid.scoring import (
    answer_tokens,
    beyond_question_recall,
    first_rank,
    gold_recall,
    numbers_matched,
    percentile,
    token_f1,
)


def test_token_f1_is_squad_f1_with_thousands_separators_dropped() -> None:
    assert answer_tokens("The total was $82,959 million.") == ["total", "was", "82959", "million"]
    # ours: revenue was 82959 million (4); gold: total net sales were 82959 million (6); 2 shared
    assert token_f1("Revenue was $82,959 million", "Total net sales were $82,959 million") == pytest.approx(0.4)
    assert token_f1("", "anything") == 0.0
    assert token_f1("Net sales", "net sales.") == 1.0


def test_restating_the_question_earns_nothing_beyond_the_question() -> None:
    question = "How much did Apple's net sales grow?"
    gold = "Apple's net sales grew 8 percent, driven by services."
    restated = "How much did Apple's net sales grow? Net sales did grow."
    assert gold_recall(restated, gold) > 0
    assert beyond_question_recall(restated, gold, question) == 0.0
    # beyond the question: grew, 8, percent, driven, services
    assert beyond_question_recall("Sales grew 8 percent from services.", gold, question) == pytest.approx(4 / 5)
    assert beyond_question_recall("anything", "Net sales grew.", "Have net sales grew?") is None


def test_numbers_matched_counts_the_gold_numbers_stated() -> None:
    assert numbers_matched("Sales were $81,797 million in 2023.", "Net sales: $81,797 million (2023), $82,959 million (2022).") == 0.5
    assert numbers_matched("No figures here.", "It rose sharply.") is None


def test_ranks_and_percentiles() -> None:
    found = [("/a/x.pdf", 3), ("/a/report 2023.pdf", 7), ("/a/report 2023.pdf", 9)]
    item = QAItem("q", "a", 2, sources=["*2023*"], pages={"*": {9}})
    assert first_rank(found, lambda s, p: is_gold(item, s)) == 2
    assert first_rank(found, lambda s, p: is_gold(item, s, p)) == 3
    assert first_rank(found, lambda s, p: False) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile(list(map(float, range(1, 21))), 0.95) == 19.0
    assert percentile([], 0.5) is None


def test_read_qa_csv_with_bom_mojibake_and_source_notes(tmp_path) -> None:
    path = tmp_path / "qa.csv"
    gold = 'The Company\u00e2\u20ac\u2122s sales rose. (SOURCE: a.pdf)\n\nSOURCE(S): a.pdf, b.pdf'
    rows = ["Question,Source Docs,Answer,Source Pages", f'"Why did sales rise?","*2023 Q3 AAPL*, b.pdf","{gold}","a.pdf:4;7"']
    path.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    (item,) = read_qa(path)
    assert item.question == "Why did sales rise?" and item.line == 2
    assert item.answer == "The Company\u2019s sales rose."
    assert item.sources == ["*2023 Q3 AAPL*", "b.pdf"] and item.pages == {"a.pdf": {4}, "*": {7}}
    assert is_gold(item, "/data/2023 Q3 AAPL.pdf") and is_gold(item, "/x/b.pdf", 7)
    assert not is_gold(item, "/x/b.pdf", 4) and is_gold(item, "/x/a.pdf", 4) is False  # a.pdf is not a gold source


def test_read_qa_jsonl_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "qa.jsonl"
    good = {"question": "Q?", "gold_answer": "A.", "sources": ["x.pdf", "y.pdf"], "page": 3}
    path.write_text(json.dumps(good) + "\n\n" + "{not json\n")
    with pytest.raises(BadRequestError, match="line 3: not valid JSON"):
        read_qa(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({"question": "Q2?"}) + "\n")
    with pytest.raises(BadRequestError, match="line 2: needs a question and a gold answer"):
        read_qa(path)
    path.write_text(json.dumps(good) + "\n")
    (item,) = read_qa(path)
    assert item.sources == ["x.pdf", "y.pdf"] and item.pages == {"*": {3}}
    with pytest.raises(BadRequestError, match="not a page"):
        path.write_text(json.dumps({**good, "page": "three"}) + "\n")
        read_qa(path)
    with pytest.raises(BadRequestError, match="no QA file"):
        read_qa(tmp_path / "missing.csv")


def test_off_corpus_questions_from_text_or_csv(tmp_path) -> None:
    text = tmp_path / "off.txt"
    text.write_text("# off-corpus\nWho won in 1998?\n\nWhat is pi?\n")
    assert read_questions(text) == ["Who won in 1998?", "What is pi?"]
    csv = tmp_path / "off.csv"
    csv.write_text("question\nWho won in 1998?\n")
    assert read_questions(csv) == ["Who won in 1998?"]


def test_silver_page_labels_come_from_the_answer() -> None:
    items = [QAItem("q", "Revenue grew twelve percent driven by services wearables subscriptions", 2, sources=["r.pdf"])]
    pages = {("/d/r.pdf", 1): "Cover page and contents", ("/d/r.pdf", 2): "Revenue grew twelve percent, driven by services, wearables and subscriptions."}
    assert label_pages(items, pages) == 1 and items[0].pages == {"r.pdf": {2}}
