"""``hybrid eval`` and the strict support check on the real embedded models (slow tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from tests.hybrid.test_cli_eval import write_qa

pytestmark = pytest.mark.slow

QA = [
    {"question": "Why did the engine lose power?", "answer": "Fuel starvation: the crew left the fuel selector on the empty tank.",
     "source": "engine report.pdf", "page": 2},
    {"question": "How much did revenue grow, and why?", "answer": "Revenue grew 12 percent to 81 billion dollars, driven by services and wearables.",
     "source": "*revenue*", "page": 1},
    {"question": "How quickly must adverse events be reported?", "answer": "Within 24 hours of awareness, to the safety desk.",
     "source": "safety.pdf", "page": 1},
]


def test_eval_on_the_real_models(tmp_path: Path, corpus_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HYBRID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HYBRID_MAX_NEW_TOKENS", "60")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(corpus_dir), "--json"]).exit_code == 0
    qa, off = write_qa(tmp_path, QA, ["What is the boiling point of mercury at sea level?", "Who won the 1998 FIFA World Cup?"])
    result = runner.invoke(main, ["eval", str(qa), "--off-corpus", str(off), "--out", str(tmp_path / "card"), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["retrieval"]["doc_hit_at_k"] == 1.0 and card["retrieval"]["page_hit_at_k"] == 1.0
    assert card["refusals"] == {"off_corpus_refused": 1.0, "covered_refused": 0.0}
    answers = card["answers"]
    assert answers["supported_sentences"] >= 0.95 and answers["valid_citations"] == 1.0
    assert answers["beyond_question_recall"] > 0.2 and answers["numbers_matched"] > 0
    for row in card["questions"][:3]:
        assert row["route"] == "rag" and "[1]" in row["answer"]
    assert "We thank" not in json.dumps(card)


def test_the_strict_check_with_the_real_embedder() -> None:
    from hybrid.support import SupportCheck, min_similarity_for
    from ingest import load_embedder

    embedder = load_embedder()
    check = SupportCheck(embedder.embed, min_similarity_for(embedder.name))
    evidence = ["The engine lost power because of fuel starvation after the crew left the fuel selector on the empty tank. "
                "The airplane landed in a field and no one was injured."]
    assert check.supports("The engine lost power because of fuel starvation.", evidence).supported
    for negative in [
        "Starvation crew the engine fuel selector power lost empty tank because.",  # shuffled
        "Revenue grew 12 percent to 81 billion dollars, driven by services.",  # another document
        "The engine lost power after about 2 hours of flight.",  # a number the evidence lacks
    ]:
        assert not check.supports(negative, evidence).supported, negative
