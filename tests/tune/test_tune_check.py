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
        (6, "empty_input"), (7, "duplicate"), (8, "conflict"),
    ]
    by_code = {p.code: p for p in report.problems}
    assert "line 1" in by_code["duplicate"].message and "line 1" in by_code["conflict"].message
    # Over-long: skipped (training goes on without it), not an error.
    assert [(p.line, p.code) for p in report.skipped] == [(9, "too_long")]
    assert "over the limit of 100" in report.skipped[0].message
    assert report.ok is False and report.examples == 1
    document = report.to_dict()
    assert {"ok", "examples", "problems", "skipped", "warnings", "line_warnings", "lengths", "fact_leak", "size"} <= set(document)
    assert {"line", "code", "message", "source"} <= set(document["problems"][0])
    assert document["skipped"] == [report.skipped[0].to_dict()]
    json.dumps(document)


def test_without_a_tokenizer_lengths_are_estimated_and_only_flagged(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", [chat("word " * 500, "A reply of some words here.")])
    estimated = check_examples(path, max_tokens=64)
    assert estimated.ok and codes(estimated) == []
    assert [(p.line, p.code) for p in estimated.line_warnings] == [(1, "maybe_too_long")]
    assert estimated.lengths["unit"] == "estimated tokens" and estimated.lengths["tokenizer"] is None
    assert any("estimated from characters" in w for w in estimated.warnings)
    measured = check_examples(path, tokenizer=make_tiny_tokenizer(), tokenizer_name="tiny", max_tokens=64)
    assert [(p.line, p.code) for p in measured.skipped] == [(1, "too_long")] and measured.examples == 0
    # Nothing is left to train on: that one is an error.
    assert not measured.ok and codes(measured) == [(0, "all_too_long")]
    assert "nothing is left to train on" in measured.problems[0].message
    assert measured.lengths["unit"] == "tokens" and measured.lengths["tokenizer"] == "tiny"
    assert measured.lengths["over_limit"] == 1 and measured.lengths["longest"] > 500
    assert not any("estimated" in w for w in measured.warnings)


def test_over_long_examples_are_skipped_with_one_warning_naming_them(tmp_path: Path, write_jsonl) -> None:
    records = [chat(f"Question number {i} about my account", f"Thanks for asking about item {i}, here is what to do.")
               for i in range(12)]
    for line in (4, 7, 11):
        records[line - 1] = chat(f"Story {line}: " + "a very long story " * 40, f"Once upon a time, {line}.")
    report = check_examples(write_jsonl(tmp_path / "long.jsonl", records), tokenizer=make_tiny_tokenizer(), max_tokens=100)
    assert report.ok and report.problems == [] and report.examples == 9
    assert [(p.line, p.code) for p in report.skipped] == [(4, "too_long"), (7, "too_long"), (11, "too_long")]
    assert report.lengths["over_limit"] == 3
    skipping = [w for w in report.warnings if "longer than" in w]
    assert len(skipping) == 1 and skipping[0].startswith("skipped 3 examples longer than 100 tokens: lines 4, 7, 11;")


def test_the_skip_warning_lists_a_few_lines_and_names_the_files(tmp_path: Path, write_jsonl) -> None:
    from tune.check import too_long_warning
    from tune.data import Problem

    many = [Problem(n, "too_long", "long", "a.jsonl") for n in range(1, 13)]
    assert too_long_warning(many, 1024) == (
        "skipped 12 examples longer than 1,024 tokens: lines 1, 2, 3, 4, 5, 6, 7, 8, ...; training goes on with the "
        "rest. Shorten or split them, or raise --max-length, to train on them too (--check --json lists them all)"
    )
    two = [Problem(3, "too_long", "long", "/data/a.jsonl"), Problem(5, "too_long", "long", "/data/b.jsonl")]
    assert "2 evaluation examples longer than 64 tokens: a.jsonl line 3, b.jsonl line 5;" in too_long_warning(
        two, 64, "evaluation examples"
    )
    assert "skipped 1 example longer than 64 tokens: line 3;" in too_long_warning(two[:1], 64)


def test_a_tokenizer_without_chat_template_falls_back_to_the_estimate(tmp_path: Path, write_jsonl) -> None:
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = None
    report = check_examples(write_jsonl(tmp_path / "ex.jsonl", [chat("Hi there", "Hello, how can we help?")]),
                            tokenizer=tokenizer)
    assert report.lengths["unit"] == "estimated tokens"
    assert any("no chat template" in w for w in report.warnings)


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
    report = check_examples(write_jsonl(tmp_path / "small.jsonl", records), tokenizer=make_tiny_tokenizer())
    assert report.ok and report.examples == 20 and report.problems == [] and report.line_warnings == []
    assert len(report.warnings) == 1 and report.size == report.warnings[0]
    assert "only 20 examples" in report.warnings[0] and "500-2,000" in report.warnings[0]
    assert "5,000-50,000" in report.warnings[0] and "Quality beats quantity" in report.warnings[0]


def test_enough_examples_drop_the_size_warning(tmp_path: Path, write_jsonl) -> None:
    records = [chat(f"Question number {i} about my account", "Thanks for asking, here is what to do next.")
               for i in range(500)]
    report = check_examples(write_jsonl(tmp_path / "big.jsonl", records), tokenizer=make_tiny_tokenizer())
    assert report.warnings == [] and report.line_warnings == []
    assert report.size.startswith("500 examples: in the 500-2,000 range that suits a house style or format")


def test_size_guidance_places_every_count_on_the_scale() -> None:
    from tune.advice import size_guidance, size_warning

    assert "unlikely to specialise" in size_guidance(499) and size_warning(499)
    assert "500-2,000 range" in size_guidance(2_000) and size_warning(2_000) is None
    assert "more than a house style or format needs" in size_guidance(4_514) and size_warning(4_514) is None
    assert "5,000-50,000 range" in size_guidance(50_000) and size_warning(50_000) is None
    assert "beyond 50,000" in size_guidance(50_001) and size_warning(50_001)


def test_short_outputs_and_leaked_facts_are_warned(tmp_path: Path, write_jsonl) -> None:
    short = [chat(f"Is order {i} shipped?", "Yes.") for i in range(10)]
    leaky = [chat(f"When did review {i} appear?", f"It was published in {1990 + i} with 4,{i}00 patients.")
             for i in range(10)]
    report = check_examples(write_jsonl(tmp_path / "w.jsonl", short + leaky))
    warnings = " ".join(report.warnings)
    assert "very short" in warnings and "10 of 20" in warnings
    assert "not in their input" in warnings and "Facts belong in retrieval, not the adapter" in warnings
    assert report.fact_leak["examples"] == 10 and report.fact_leak["share"] == 0.5
    # The worst lines come first: every leaky line leaks a year and a patient count.
    assert [w["line"] for w in report.fact_leak["worst"]] == list(range(11, 21))
    assert report.fact_leak["worst"][0]["facts"] == ["1990", "4000"]
    assert {(p.line, p.code) for p in report.line_warnings} == {(line, "fact_leak") for line in range(11, 21)}


def test_numbers_from_the_input_and_list_markers_are_not_leaks(tmp_path: Path, write_jsonl) -> None:
    records = [chat(f"Trial {i}: 1,250 patients, risk ratio 0.{i}5.",
                    f"1. The trial had 1250 patients.\n2. The risk ratio was 0.{i}5, a small effect overall.")
               for i in range(10)]
    report = check_examples(write_jsonl(tmp_path / "ok.jsonl", records))
    assert "not in their input" not in " ".join(report.warnings)
    assert report.fact_leak == {"share": 0.0, "examples": 0, "common": [], "worst": []}


def test_inputs_equal_up_to_case_with_other_outputs_are_flagged_not_refused(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "varied.jsonl", [
        chat("How do I cancel my order?", "Open your orders and press Cancel next to the order."),
        chat("how do i cancel my order", "Go to the orders page, find the order and choose Cancel."),
    ])
    report = check_examples(path)
    assert report.ok and report.examples == 2
    assert [(p.line, p.code) for p in report.line_warnings] == [(2, "near_conflict")]
    assert "line 1" in report.line_warnings[0].message
    assert any("repeats an earlier input apart from case" in w for w in report.warnings)


def test_an_empty_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    report = check_examples(path)
    assert not report.ok and codes(report) == [(0, "no_examples")]
