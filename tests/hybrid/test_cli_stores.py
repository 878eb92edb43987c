"""The CLI's contract on both stores: the same commands, flags, JSON and exit codes whether
``--index`` names a directory or a PostgreSQL URL (a real server, started for the session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)  # exactly one JSON document, or this fails


@pytest.fixture(params=["directory", "postgres"])
def index(request, tmp_path: Path) -> str:
    if request.param == "directory":
        return str(tmp_path / "index")
    return request.getfixturevalue("postgres_url")


def test_ingest_search_ask_list_and_remove(home: Path, corpus_dir: Path, index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_MIN_SCORE", "0.2")
    code, missing = run("search", "revenue", "--index", index)
    assert code == 1 and missing["error"]["code"] == "not_found" and "hybrid ingest" in missing["error"]["message"]
    code, report = run("ingest", str(corpus_dir), "--index", index)
    assert code == 0 and (report["files_added"], report["pages"], report["chunks"]) == (3, 6, 6)
    code, report = run("ingest", str(corpus_dir), "--index", index)
    assert code == 0 and (report["files_added"], report["files_unchanged"]) == (0, 3)

    code, found = run("search", "adverse events safety desk", "-k", "2", "--index", index)
    assert code == 0 and Path(found["hits"][0]["source"]).name == "safety.pdf" and found["hits"][0]["page"] == 1
    code, found = run("search", "fuel", "--index", index, "--source", "engine report.pdf", "--pages", "2")
    assert code == 0 and {(Path(h["source"]).name, h["page"]) for h in found["hits"]} == {("engine report.pdf", 2)}
    code, answer = run("ask", "How much did revenue grow?", "--adapter", "none", "--index", index)
    assert code == 0 and answer["route"] == "rag" and answer["citations"]
    assert Path(answer["citations"][0]["source"]).name == "quarterly revenue été.pdf"
    code, answer = run("ask", "Which koala subspecies sings opera loudly?", "--index", index)
    assert code == 0 and answer["route"] == "refuse"

    code, listed = run("docs", "list", "--index", index)
    assert code == 0 and [(Path(d["source"]).name, d["pages"]) for d in listed["documents"]] == [
        ("engine report.pdf", 3), ("quarterly revenue été.pdf", 2), ("safety.pdf", 1)
    ]
    code, removed = run("docs", "remove", str(corpus_dir / "safety.pdf"), "--index", index)
    assert code == 0 and [Path(s).name for s in removed["removed"]] == ["safety.pdf"]
    code, removed = run("docs", "remove", str(corpus_dir / "safety.pdf"), "--index", index)
    assert code == 1 and removed["removed"] == []
    code, found = run("search", "adverse events safety desk", "--index", index)
    assert code == 0 and "safety.pdf" not in {Path(h["source"]).name for h in found["hits"]}


def test_the_store_setting_and_a_bad_url(home: Path, corpus_dir: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_STORE", postgres_url)
    code, report = run("ingest", str(corpus_dir))
    assert code == 0 and report["files_added"] == 3
    assert not (home / "index").exists()  # the store setting, not the default directory
    code, listed = run("docs", "list")
    assert code == 0 and len(listed["documents"]) == 3
    code, listed = run("docs", "list", "--index", str(home / "elsewhere"))  # a directory beats the setting
    assert code == 1 and listed["error"]["code"] == "not_found"
    monkeypatch.setenv("HYBRID_STORE", "mysql://nope")
    code, failed = run("docs", "list")
    assert code == 2 and failed["error"]["code"] == "invalid_config" and "PostgreSQL URL" in failed["error"]["message"]
    monkeypatch.delenv("HYBRID_STORE")
    unreachable = "postgresql://nobody@/nodb?host=/nonexistent-socket-dir"
    code, failed = run("search", "revenue", "--index", unreachable)
    assert code == 1 and failed["error"]["code"] == "index_unavailable"
    assert "cannot connect" in failed["error"]["message"] and "Traceback" not in failed["error"]["message"]


def test_migrate_copies_the_embedded_index_and_the_same_questions_find_the_same_passages(
    home: Path, corpus_dir: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRID_MIN_SCORE", "0.2")
    run("ingest", str(corpus_dir))
    code, report = run("migrate", postgres_url)
    assert code == 0 and (report["documents_copied"], report["chunks_copied"], report["documents_unchanged"]) == (3, 6, 0)
    code, again = run("migrate", postgres_url)
    assert code == 0 and (again["documents_copied"], again["documents_unchanged"]) == (0, 3)
    questions = ["adverse events safety desk", "fuel selector empty tank", "revenue growth services", "research hiring"]
    for question in questions:
        _, there = run("search", question, "-k", "3")
        _, here = run("search", question, "-k", "3", "--index", postgres_url)
        assert [(h["chunk_id"], round(h["score"], 4)) for h in here["hits"]] == [
            (h["chunk_id"], round(h["score"], 4)) for h in there["hits"]
        ], question
    code, listed = run("docs", "list", "--index", postgres_url)
    assert code == 0 and len(listed["documents"]) == 3
    code, failed = run("migrate", str(home / "not-a-url"))
    assert code == 1 and failed["error"]["code"] == "bad_request"
