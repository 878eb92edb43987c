"""A file with one planted fault of each kind: the check names every faulty line, and no other."""

from __future__ import annotations

from pathlib import Path

from tests.support.planted_examples import MAX_TOKENS, write_planted
from tests.support.tiny_llama import make_tiny_tokenizer
from tune import check_examples

ERRORS = {"malformed_json", "missing_output", "bad_role", "unknown_format", "duplicate", "conflict"}
SKIPPED = {"too_long"}  # left out of training with a warning, not errors


def test_every_planted_fault_is_named_with_its_line_and_code(tmp_path: Path) -> None:
    path, key = write_planted(tmp_path / "planted.jsonl")
    report = check_examples(path, tokenizer=make_tiny_tokenizer(), tokenizer_name="tiny", max_tokens=MAX_TOKENS)
    errors = {(p.line, p.code) for p in report.problems}
    skipped = {(p.line, p.code) for p in report.skipped}
    flagged = {(p.line, p.code) for p in report.line_warnings}
    assert errors == {(line, code) for line, code in key.items() if code in ERRORS}
    assert skipped == {(line, code) for line, code in key.items() if code in SKIPPED}
    assert flagged == {(line, code) for line, code in key.items() if code not in ERRORS | SKIPPED}
    assert all(p.source == str(path) for p in report.problems + report.skipped + report.line_warnings)
    assert not report.ok and report.examples == 30 + 4  # clean lines + the four that only warn


def test_messages_name_the_other_line_and_the_leaked_facts(tmp_path: Path) -> None:
    path, key = write_planted(tmp_path / "planted.jsonl")
    report = check_examples(path, tokenizer=make_tiny_tokenizer(), max_tokens=MAX_TOKENS)
    by_line = {(p.line, p.code): p.message for p in report.problems + report.skipped + report.line_warnings}
    line = {code: n for n, code in reversed(key.items())}  # the first line planted with each code
    assert "line 1" in by_line[line["duplicate"], "duplicate"] and "line 1" in by_line[line["conflict"], "conflict"]
    assert "line 2" in by_line[line["near_duplicate"], "near_duplicate"]
    assert "line 4" in by_line[line["near_conflict"], "near_conflict"]
    assert f"over the limit of {MAX_TOKENS}" in by_line[line["too_long"], "too_long"]
    leak = by_line[line["fact_leak"], "fact_leak"]
    assert all(fact in leak for fact in ("14", "2023", "March", "Okafor", "Leeds"))
    assert report.fact_leak["worst"][0]["line"] == line["fact_leak"]


def test_the_size_guidance_is_applied(tmp_path: Path) -> None:
    path, _ = write_planted(tmp_path / "planted.jsonl")
    report = check_examples(path, tokenizer=make_tiny_tokenizer(), max_tokens=MAX_TOKENS)
    size = report.warnings[0]
    assert size.startswith(f"only {report.examples} examples: below about 500")
    assert "500-2,000" in size and "5,000-50,000" in size and "Quality beats quantity" in size


def test_fixing_the_planted_lines_leaves_a_clean_report(tmp_path: Path) -> None:
    path, key = write_planted(tmp_path / "planted.jsonl")
    lines = path.read_text().splitlines()
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text("".join(line + "\n" for number, line in enumerate(lines, 1) if number not in key))
    report = check_examples(fixed, tokenizer=make_tiny_tokenizer(), max_tokens=MAX_TOKENS)
    assert report.ok and report.problems == [] and report.skipped == [] and report.line_warnings == []
    assert report.examples == 30
