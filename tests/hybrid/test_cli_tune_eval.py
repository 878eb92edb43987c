"""``hybrid tune eval ADAPTER EXAMPLES`` beside ``hybrid tune EXAMPLES...`` (tiny model)."""

from __future__ import annotations

import math
from pathlib import Path

from click.testing import CliRunner

from hybrid.cli import main
from tests.hybrid.test_cli import examples, run  # noqa: F401  (examples: 12 chat examples, a fixture)


def test_eval_reports_loss_and_style_for_adapter_and_base(home: Path, examples: Path) -> None:
    code, trained = run("tune", str(examples), "--max-steps", "1")
    assert code == 0 and trained["adapter"] == "house@v1"
    code, report = run("tune", "eval", "house", str(examples), "--max-examples", "2", "--max-new-tokens", "6")
    assert code == 0 and report["adapter"] == "house@v1" and (report["examples"], report["scored"]) == (12, 2)
    assert math.isfinite(report["eval_loss"]) and math.isfinite(report["base_eval_loss"])
    assert 0 <= report["style_score"] <= 1 and 0 <= report["base_style_score"] <= 1
    assert set(report["components"]) == {"score", "chrf", "markers", "length", "layout"}
    assert "kind regards , support ." in report["markers"] and len(report["worst"]) == 2
    human = CliRunner().invoke(main, ["tune", "eval", "house@v1", str(examples), "--max-examples", "1",
                                      "--max-new-tokens", "4", "--no-base"])
    assert human.exit_code == 0 and "style score" in human.stdout and "does not check facts" in human.stdout
    assert "(base model)" not in human.stdout


def test_eval_of_the_base_model_alone(home: Path, examples: Path) -> None:
    code, report = run("tune", "eval", "none", str(examples), "--max-examples", "1", "--max-new-tokens", "4")
    assert code == 0 and report["adapter"] is None and report["base_eval_loss"] is None
    assert report["base_components"] is None and math.isfinite(report["eval_loss"])


def test_eval_errors_name_the_line_or_the_adapter(home: Path, examples: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(examples.read_text() + "{broken\n")
    code, body = run("tune", "eval", "none", str(bad))
    assert code == 1 and "line 13" in body["error"]["message"] and "--check" in body["error"]["message"]
    code, body = run("tune", "eval", "missing", str(examples))
    assert code == 1 and body["error"]["code"] == "not_found"
    assert CliRunner().invoke(main, ["tune", "eval", "none"]).exit_code == 2


def test_tune_keeps_its_contract_and_help_mentions_eval(home: Path, examples: Path) -> None:
    code, report = run("tune", "--check", str(examples))
    assert code == 0 and report["ok"] and report["examples"] == 12
    assert CliRunner().invoke(main, ["tune"]).exit_code == 2  # EXAMPLES missing: a usage error, as before
    help_text = CliRunner().invoke(main, ["tune", "--help"]).stdout
    assert "tune [OPTIONS] EXAMPLES..." in help_text and "--check" in help_text and "eval" in help_text
