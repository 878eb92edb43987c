"""``hybrid ask`` with --strict and --unsupported, and the human output of a dropped sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from tests.hybrid.test_pipeline import ScriptedGenerator

QUESTION = "Why did the engine lose power?"
ANSWER = "The engine lost power at 4,500 feet because of fuel starvation [1]. The engine lost power because of fuel starvation [1]."


@pytest.fixture
def indexed(home: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HYBRID_MIN_SCORE", "0.2")
    assert CliRunner().invoke(main, ["ingest", str(corpus_dir)]).exit_code == 0
    return home


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid.pipeline import Pipeline

    monkeypatch.setattr(Pipeline, "generator", lambda self, adapter: ScriptedGenerator(ANSWER))


def ask(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ask", *args])
    return result.exit_code, result.stdout


def test_strict_refuses_with_the_reason(indexed, scripted) -> None:
    code, out = ask(QUESTION, "--strict", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["route"] == "refuse" and answer["reason"].startswith("strict: 1 of 2")
    code, out = ask(QUESTION, "--strict")
    assert "why: strict: 1 of 2 sentences" in out and "route: refuse" in out


def test_the_human_output_says_what_was_left_out_or_flagged(indexed, scripted) -> None:
    code, out = ask(QUESTION)
    assert code == 0 and "4,500" not in out.splitlines()[0]
    assert 'left out 1 sentence(s) the passages do not support, first: "The engine lost power at 4,500 feet' in out
    code, out = ask(QUESTION, "--unsupported", "flag")
    assert "4,500" in out.splitlines()[0] and "not supported by the passages: 1 sentence(s)" in out and "grounded: no" in out


def test_strict_with_the_tiny_model_never_prints_an_unsupported_answer(indexed) -> None:
    code, out = ask(QUESTION, "--strict", "--json")
    answer = json.loads(out)
    assert code == 0
    assert answer["route"] == "refuse" and answer["reason"].startswith("strict:") or answer["grounded"]


def test_an_unknown_unsupported_mode_is_a_usage_error(indexed) -> None:
    code, _ = ask(QUESTION, "--unsupported", "hide")
    assert code == 2
