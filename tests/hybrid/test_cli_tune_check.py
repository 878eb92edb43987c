"""`hybrid tune --check` on planted faults, through the CLI: every faulty line named, in JSON and text."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hybrid.cli import main
from tests.support.planted_examples import MAX_TOKENS, clean_examples, write_planted

ERRORS = {"malformed_json", "missing_output", "bad_role", "unknown_format", "too_long", "duplicate", "conflict"}


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_check_names_every_planted_line_and_applies_the_size_guidance(home: Path, tmp_path: Path) -> None:
    path, key = write_planted(tmp_path / "planted.jsonl")
    code, report = run("tune", "--check", str(path), "--max-length", str(MAX_TOKENS))
    assert code == 1 and report["ok"] is False
    assert {(p["line"], p["code"]) for p in report["problems"]} == {(n, c) for n, c in key.items() if c in ERRORS}
    assert {(p["line"], p["code"]) for p in report["line_warnings"]} == {(n, c) for n, c in key.items() if c not in ERRORS}
    assert report["lengths"]["unit"] == "tokens" and report["lengths"]["limit"] == MAX_TOKENS
    assert report["warnings"][0].startswith("only 34 examples: below about 500")
    text = CliRunner().invoke(main, ["tune", "--check", str(path), "--max-length", str(MAX_TOKENS)])
    assert text.exit_code == 1
    for line, problem in key.items():
        assert f"{path}:{line}: [{problem}]" in text.stdout


def test_without_the_base_tokenizer_the_check_estimates_and_says_why(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in clean_examples(10)))
    code, report = run("tune", "--check", str(path), "--base-model", str(tmp_path / "no-model"))
    assert code == 0 and report["ok"] and report["lengths"]["unit"] == "estimated tokens"
    assert any("estimated from characters" in w and "no-model" in w for w in report["warnings"])


def test_csv_columns_by_flag(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "support.csv"
    rows = ["flags,instruction,category,response"] + [
        f'B,"{r["messages"][0]["content"]}",ORDER,"{r["messages"][1]["content"]}"' for r in clean_examples(5)
    ]
    path.write_text("\n".join(rows) + "\n")
    code, report = run("tune", "--check", str(path), "--input-column", "instruction", "--output-column", "response")
    assert code == 0 and report["examples"] == 5
    code, report = run("tune", "--check", str(path), "--input-column", "ticket", "--output-column", "response")
    assert code == 1 and report["problems"][0]["line"] == 1
    assert "flags, instruction, category, response" in report["problems"][0]["message"]


def test_tune_runs_the_same_check_and_refuses_errors_unless_forced(home: Path, tmp_path: Path) -> None:
    path, key = write_planted(tmp_path / "planted.jsonl")
    code, body = run("tune", str(path), "--max-length", str(MAX_TOKENS), "--max-steps", "1")
    assert code == 1 and body["error"]["code"] == "dataset" and "--force" in body["error"]["message"]
    code, result = run("tune", str(path), "--max-length", str(MAX_TOKENS), "--max-steps", "1", "--force")
    assert code == 3 and result["examples"] == 34
    assert [p["line"] for p in result["problems"]] == sorted(n for n, c in key.items() if c in ERRORS)
    assert {p["code"] for p in result["line_warnings"]} == {"near_duplicate", "near_conflict", "fact_leak"}
