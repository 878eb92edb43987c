"""`hybrid tune --check` on planted faults, through the CLI: every faulty line named, in JSON and text."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hybrid.cli import main
from tests.support.planted_examples import MAX_TOKENS, clean_examples, write_planted

ERRORS = {"malformed_json", "missing_output", "bad_role", "unknown_format", "duplicate", "conflict"}
SKIPPED = {"too_long"}  # left out of training with one warning, not errors


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_check_names_every_planted_line_and_applies_the_size_guidance(home: Path, tmp_path: Path) -> None:
    path, key = write_planted(tmp_path / "planted.jsonl")
    code, report = run("tune", "--check", str(path), "--max-length", str(MAX_TOKENS))
    assert code == 1 and report["ok"] is False
    assert {(p["line"], p["code"]) for p in report["problems"]} == {(n, c) for n, c in key.items() if c in ERRORS}
    assert {(p["line"], p["code"]) for p in report["skipped"]} == {(n, c) for n, c in key.items() if c in SKIPPED}
    assert {(p["line"], p["code"]) for p in report["line_warnings"]} == {
        (n, c) for n, c in key.items() if c not in ERRORS | SKIPPED
    }
    assert report["lengths"]["unit"] == "tokens" and report["lengths"]["limit"] == MAX_TOKENS
    assert report["warnings"][0].startswith("only 34 examples: below about 500")
    text = CliRunner().invoke(main, ["tune", "--check", str(path), "--max-length", str(MAX_TOKENS)])
    assert text.exit_code == 1
    for line, problem in key.items():
        assert f"{path}:{line}: [{problem}]" in text.stdout
    assert "skipped (longer than the limit: training leaves these lines out):" in text.stdout


def test_over_long_lines_are_listed_by_the_check_and_skipped_by_training(home: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    records = clean_examples(10)
    long = [3, 8]
    for line in long:
        records[line - 1] = {"messages": [{"role": "user", "content": f"Story {line}. " + "It went on and on. " * 80},
                                          {"role": "assistant", "content": "Thanks, we will read it all."}]}
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    model = ["--base-model", str(tiny_model_dir), "--max-length", "128"]
    code, report = run("tune", "--check", str(path), *model)
    assert code == 0 and report["ok"] and report["problems"] == [] and report["examples"] == 8
    assert [(p["line"], p["code"]) for p in report["skipped"]] == [(3, "too_long"), (8, "too_long")]
    assert report["lengths"]["over_limit"] == 2
    code, result = run("tune", str(path), *model, "--max-steps", "1")
    assert code == 0 and (result["examples"], result["skipped"]) == (8, 2) and result["problems"] == []
    skipping = [w for w in result["warnings"] if "longer than" in w]
    assert len(skipping) == 1 and skipping[0].startswith("skipped 2 examples longer than 128 tokens: lines 3, 8;")
    # Every example over-long: nothing to train on, an error naming them.
    path.write_text("".join(json.dumps(records[line - 1]) + "\n" for line in long))
    code, report = run("tune", "--check", str(path), *model)
    assert code == 1 and [p["code"] for p in report["problems"]] == ["all_too_long"] and len(report["skipped"]) == 2
    code, body = run("tune", str(path), *model, "--max-steps", "1")
    assert code == 1 and body["error"]["code"] == "dataset" and "nothing is left to train on" in body["error"]["message"]


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
    assert code == 3 and result["examples"] == 34 and result["skipped"] == 1
    assert [p["line"] for p in result["problems"]] == sorted(n for n, c in key.items() if c in ERRORS)
    assert {p["code"] for p in result["line_warnings"]} == {"near_duplicate", "near_conflict", "fact_leak"}
