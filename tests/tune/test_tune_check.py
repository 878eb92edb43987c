"""Dataset checks: every problem code with its line, and the product's warnings."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.tiny_llama import make_tiny_tokenizer
from tune import check_examples


def chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def codes(report) -> list[tuple[int, str]]:
    return [(p.line, p.code) for p in report.problems]


def test_every_problem_code_names_its_line(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "ex.jsonl", [
        chat("How do I reset my password?", "Open Settings, then choose Reset password."),  # 1 ok
        "{oops",                                                                          # 2
        {"text": "no known keys"},                                                        # 3
        {"messages": [{"role": "user", "content": "Hello?"}]},                             # 4
        {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]},  # 5
        {"prompt": "  ", "completion": "Something."},                                      # 6
        chat("How do I reset my password?", "Open Settings, then choose Reset password."),  # 7 duplicate of 1
        chat("How do I reset my password?", "Call us."),                                  # 8 conflict with 1
        chat("Tell me a very long story " * 40, "Once upon a time."),                     # 9 too long
    ])
    report = check_examples(path, tokenizer=make_tiny_tokenizer(), max_tokens=100)
    assert codes(report) == [
        (2, "malformed_json"), (3, "unknown_format"), (4, "missing_output"), (5, "bad_role"),
        (6, "empty_input"), (7, "duplicate"), (8, "conflict"), (9, "too_long"),
    ]
    by_code = {p.code: p for p in report.problems}
    assert "line 1" in by_code["duplicate"].message and "line 1" in by_code["conflict"].message
    assert "over the limit of 100" in by_code["too_long"].message
    assert report.ok is False and report.examples == 1
    document = report.to_dict()
    assert set(document) == {"ok", "examples", "problems", "warnings"}
    assert {"line", "code", "message"} <= set(document["problems"][0])
    json.dumps(document)


def test_too_long_needs_a_tokenizer(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", [chat("word " * 500, "A reply of some words here.")])
    assert check_examples(path).ok
    assert codes(check_examples(path, tokenizer=make_tiny_tokenizer(), max_tokens=64)) == [(1, "too_long")]


def test_duplicates_across_files_name_the_other_file(tmp_path: Path, write_jsonl) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [chat("Where is my order?", "It ships today, as promised.")])
    same = {"prompt": "Where is my order?", "completion": "It ships today, as promised."}
    second = write_jsonl(tmp_path / "b.jsonl", [same])
    report = check_examples([first, second])
    assert codes(report) == [(1, "duplicate")]
    assert report.problems[0].source == str(second) and str(first) in report.problems[0].message


def test_clean_small_dataset_is_ok_but_warned_about_size(tmp_path: Path, write_jsonl) -> None:
    records = [chat(f"Question number {i} about my account", f"Thanks for asking about item {i}, here is what to do.")
               for i in range(20)]
    report = check_examples(write_jsonl(tmp_path / "small.jsonl", records))
    assert report.ok and report.examples == 20 and report.problems == []
    assert len(report.warnings) == 1
    assert "only 20 examples" in report.warnings[0] and "500-2,000" in report.warnings[0]
    assert "5,000-50,000" in report.warnings[0] and "Quality beats quantity" in report.warnings[0]


def test_enough_examples_drop_the_size_warning(tmp_path: Path, write_jsonl) -> None:
    records = [chat(f"Question number {i} about my account", "Thanks for asking, here is what to do next.")
               for i in range(500)]
    assert check_examples(write_jsonl(tmp_path / "big.jsonl", records)).warnings == []


def test_short_outputs_and_leaked_facts_are_warned(tmp_path: Path, write_jsonl) -> None:
    short = [chat(f"Is order {i} shipped?", "Yes.") for i in range(10)]
    leaky = [chat(f"When did review {i} appear?", f"It was published in {1990 + i} with 4,{i}00 patients.")
             for i in range(10)]
    warnings = " ".join(check_examples(write_jsonl(tmp_path / "w.jsonl", short + leaky)).warnings)
    assert "very short" in warnings and "10 of 20" in warnings
    assert "not in their input" in warnings and "Facts belong in retrieval, not the adapter" in warnings


def test_numbers_from_the_input_and_list_markers_are_not_leaks(tmp_path: Path, write_jsonl) -> None:
    records = [chat(f"Trial {i}: 1,250 patients, risk ratio 0.{i}5.",
                    f"1. The trial had 1250 patients.\n2. The risk ratio was 0.{i}5, a small effect overall.")
               for i in range(10)]
    warnings = " ".join(check_examples(write_jsonl(tmp_path / "ok.jsonl", records)).warnings)
    assert "not in their input" not in warnings


def test_an_empty_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    report = check_examples(path)
    assert not report.ok and codes(report) == [(0, "no_examples")]
