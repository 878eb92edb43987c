"""``hybrid eval``: the scorecard through the CLI, beside a second setup, with its files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hybrid.cli import main

QA = [
    {"question": "Why did the engine lose power?", "answer": "Fuel starvation: the crew left the fuel selector on the empty tank.",
     "source": "engine report.pdf", "page": 2},
    {"question": "How much did revenue grow?", "answer": "Revenue grew 12 percent to 81 billion dollars.", "source": "*revenue*"},
]


def write_qa(folder: Path, rows: list[dict], off_corpus: list[str]) -> tuple[Path, Path]:
    """A JSONL QA set and a file of off-corpus questions in ``folder``."""
    qa, off = folder / "qa.jsonl", folder / "off.txt"
    qa.write_text("".join(json.dumps(row) + "\n" for row in rows))
    off.write_text("\n".join(off_corpus) + "\n")
    return qa, off


def test_eval_scores_two_setups_in_one_run(home: Path, corpus_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HYBRID_MIN_SCORE", "0.2")  # the fake embedder's scores are lower than a real one's
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(corpus_dir), "--json"]).exit_code == 0
    qa, off = write_qa(tmp_path, QA, ["Which koala subspecies sings opera loudly?"])
    out = tmp_path / "scorecard"
    result = runner.invoke(main, ["eval", str(qa), "--off-corpus", str(off), "--against", "evidence=0", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["n"] == 2 and set(card) >= {"retrieval", "answers", "refusals", "latency_ms", "questions", "against"}
    assert card["retrieval"]["doc_hit_at_k"] == 1.0 and card["retrieval"]["page_hit_at_k"] == 1.0 and card["retrieval"]["mrr"] > 0
    answers = card["answers"]
    assert set(answers) >= {"token_f1", "gold_recall", "numbers_matched", "supported_sentences", "valid_citations"}
    assert 0 < answers["token_f1"] <= 1 and answers["valid_citations"] == 1.0
    assert card["refusals"] == {"off_corpus_refused": 1.0, "covered_refused": 0.0}
    assert card["latency_ms"]["p50"] > 0 and card["latency_ms"]["p95"] >= card["latency_ms"]["p50"]
    assert len(card["questions"]) == 3 and card["questions"][-1]["off_corpus"]
    assert card["against"]["system"] == "against: evidence=0" and card["against"]["n"] == 2
    assert json.loads((out / "scorecard.json").read_text()) == card
    assert (out / "scorecard.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "scorecard.md").read_text()
    assert "| answer token F1 |" in table and "ratio" in table

    human = runner.invoke(main, ["eval", str(qa), "--off-corpus", str(off), "--out", str(out), "--limit", "1"])
    assert human.exit_code == 0 and "| measure | hybrid |" in human.stdout and "1 questions" in human.stdout


def test_eval_reports_a_bad_qa_file_by_line(home: Path, corpus_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["ingest", str(corpus_dir), "--json"])
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps(QA[0]) + "\n{oops\n")
    result = runner.invoke(main, ["eval", str(qa), "--json"])
    assert result.exit_code == 1 and "line 2" in json.loads(result.stdout)["error"]["message"]
    qa.write_text(json.dumps(QA[0]) + "\n")
    result = runner.invoke(main, ["eval", str(qa), "--against", "nonsense", "--json"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.stdout
