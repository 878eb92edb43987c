"""The CLI in-process (click's runner): JSON on stdout only, the contract's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from tests.support.tools import require_tesseract


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)  # exactly one JSON document, or this fails


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    path = tmp_path / "house.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"Summarise note {i} about the pump."},
                      {"role": "assistant", "content": f"Summary: the pump note {i} is filed. Kind regards, Support."}]}
        for i in range(12)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_ingest_is_incremental_and_reports_bad_files_with_exit_3(home: Path, corpus_dir: Path, tmp_path: Path) -> None:
    code, report = run("ingest", str(corpus_dir))
    assert code == 0 and report["files_added"] == 3 and report["pages"] == 6 and report["chunks"] >= 6
    assert set(report) >= {"files_added", "files_updated", "files_unchanged", "files_removed", "files_failed", "pages", "chunks", "seconds"}
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n garbage")
    code, report = run("ingest", str(corpus_dir), str(broken))
    assert code == 3 and report["files_unchanged"] == 3 and report["files_added"] == 0
    assert report["files_failed"][0]["path"].endswith("broken.pdf") and report["files_failed"][0]["error"]


def test_search_and_ask(home: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_MIN_SCORE", "0.2")
    run("ingest", str(corpus_dir))
    code, found = run("search", "adverse events safety desk", "-k", "2")
    assert code == 0 and Path(found["hits"][0]["source"]).name == "safety.pdf" and found["hits"][0]["page"] == 1
    code, answer = run("ask", "Which koala subspecies sings opera loudly?")
    assert code == 0 and answer["route"] == "refuse"
    code, answer = run("ask", "How much did revenue grow?", "--adapter", "none")
    assert code == 0 and answer["route"] == "rag" and answer["adapter"] is None


def test_ingest_progress_bar_and_summary_name_the_files(home: Path, corpus_dir: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(corpus_dir), "--progress"])
    assert result.exit_code == 0
    assert "page/s" in result.stderr and "file 3/3" in result.stderr
    assert "added: " in result.stdout and "safety.pdf" in result.stdout


def test_search_and_ask_filters(home: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("ingest", str(corpus_dir))
    code, found = run("search", "revenue safety desk", "--source", "*safety*", "--source", "nothing.pdf")
    assert code == 0 and {Path(h["source"]).name for h in found["hits"]} == {"safety.pdf"}
    code, found = run("search", "revenue expenses landed", "--pages", "2-")
    assert code == 0 and {h["page"] for h in found["hits"]} == {2, 3}
    code, found = run("search", "revenue expenses landed", "--pages", "2")
    assert code == 0 and found["hits"] and {h["page"] for h in found["hits"]} == {2}
    code, error = run("search", "revenue", "--source", "*nothing*")
    assert code == 1 and error["error"]["code"] == "search_filter"
    monkeypatch.chdir(corpus_dir.parent)
    code, found = run("search", "revenue safety desk", "--source", f"{corpus_dir.name}/safety.pdf")
    assert code == 0 and {Path(h["source"]).name for h in found["hits"]} == {"safety.pdf"}
    result = CliRunner().invoke(main, ["search", "revenue", "--pages", "40"])
    assert result.exit_code == 0 and "no passages match the --source/--pages filter" in result.stdout
    result = CliRunner().invoke(main, ["search", "revenue", "--pages", "5-2"])
    assert result.exit_code == 2 and "empty" in result.output


def test_tune_check_names_the_bad_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "completion": "Hello."}\n{not json\n')
    code, report = run("tune", "--check", str(bad))
    assert code == 1 and report["ok"] is False
    assert [p["line"] for p in report["problems"]] == [2]


def test_tune_then_ask_with_the_new_adapter(home: Path, corpus_dir: Path, examples: Path) -> None:
    code, result = run("tune", str(examples), "--name", "house", "--max-steps", "2", "--eval", str(examples))
    assert code == 0 and result["adapter"] == "house@v1" and Path(result["path"]).is_dir()
    assert result["examples"] == 12 and result["base_eval_loss"] is not None
    code, result = run("tune", str(examples), "--max-steps", "1")
    assert code == 0 and result["adapter"] == "house@v2"
    run("ingest", str(corpus_dir))
    code, answer = run("ask", "How much did revenue grow?", "--adapter", "house@v1")
    assert code == 0 and answer["adapter"] == "house@v1"
    code, answer = run("ask", "How much did revenue grow?")  # default: the active version of 'house'
    assert answer["adapter"] == "house@v2"


def test_usage_errors_exit_2(home: Path) -> None:
    assert CliRunner().invoke(main, ["ask"]).exit_code == 2
    assert CliRunner().invoke(main, ["search", "x", "-k", "0"]).exit_code == 2


def test_errors_are_one_json_document_with_exit_1(home: Path) -> None:
    code, body = run("search", "anything")
    assert code == 1 and body["error"]["code"] == "not_found" and "hybrid ingest" in body["error"]["message"]


def test_serve_refuses_a_public_address_without_keys(home: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "HYBRID_API_KEY" in result.stderr


def test_serve_without_an_index_fails_with_one_line(home: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--json"])
    assert result.exit_code == 1 and "hybrid ingest" in result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    assert "Traceback" not in result.stderr


def test_tune_force_skips_bad_lines_and_exits_3(home: Path, examples: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(examples.read_text() + "{broken\n")
    code, report = run("tune", str(mixed))
    assert code == 1 and "error" in report
    code, result = run("tune", str(mixed), "--force", "--max-steps", "1")
    assert code == 3 and result["adapter"] == "house@v1" and result["examples"] == 12
    assert [p["line"] for p in result["problems"]] == [13]


def test_an_unexpected_failure_is_one_line_and_one_json_document(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid.pipeline import Pipeline

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Pipeline, "search", boom)
    result = CliRunner().invoke(main, ["search", "anything", "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["error"] == {"code": "internal_error", "message": "unexpected RuntimeError: disk on fire"}


def test_serve_logs_go_to_stderr_so_json_stdout_stays_clean() -> None:
    from hybrid.cli.serve import _logs_to_stderr

    handlers = _logs_to_stderr()["handlers"]
    assert handlers and all(h["stream"] == "ext://sys.stderr" for h in handlers.values())


def test_docs_list_and_remove(home: Path, corpus_dir: Path) -> None:
    run("ingest", str(corpus_dir))
    code, listed = run("docs", "list")
    assert code == 0 and len(listed["documents"]) == 3
    assert {Path(d["source"]).name for d in listed["documents"]} >= {"safety.pdf"}
    code, removed = run("docs", "remove", str(corpus_dir / "safety.pdf"))
    assert code == 0 and [Path(s).name for s in removed["removed"]] == ["safety.pdf"]
    code, found = run("search", "adverse events safety desk", "-k", "5")
    assert all(Path(h["source"]).name != "safety.pdf" for h in found["hits"])
    code, removed = run("docs", "remove", str(corpus_dir / "nothing-here.pdf"))
    assert code == 1 and removed["removed"] == []
    code, removed = run("docs", "remove", str(corpus_dir))  # a folder: everything below it
    assert code == 0 and len(removed["removed"]) == 2
    code, listed = run("docs", "list")
    assert listed["documents"] == []


def test_ingest_while_another_ingest_writes_fails_at_once_naming_it(home: Path, corpus_dir: Path) -> None:
    import os

    from ingest.lock import writer_lock

    run("ingest", str(corpus_dir))
    with writer_lock(home / "index"):
        code, report = run("ingest", str(corpus_dir))
        assert code == 1
        assert "is being written by another ingest" in report["error"]["message"]
        assert f"pid {os.getpid()}" in report["error"]["message"]
        code, found = run("search", "adverse events safety desk")  # readers are not blocked
        assert code == 0 and Path(found["hits"][0]["source"]).name == "safety.pdf"


def test_ingest_ocr_without_tesseract_says_how_to_install_it(
    home: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.ocr

    monkeypatch.setattr(ingest.ocr, "TESSERACT", "no-such-ocr-engine")
    code, report = run("ingest", str(corpus_dir), "--ocr")
    assert code == 1 and "apt install tesseract-ocr" in report["error"]["message"]


def test_ingest_ocr_reads_a_scan_and_search_finds_it_under_a_non_ascii_name(home: Path, tmp_path: Path) -> None:
    require_tesseract()
    from tests.support.pdfs import make_scanned_pdf

    scan = make_scanned_pdf(tmp_path / "日本 scans" / "relevé été.pdf", ["The glider winch cable snapped during the launch."])
    code, report = run("ingest", str(scan))
    assert code == 1 and "--ocr" in report["files_failed"][0]["error"]
    code, report = run("ingest", str(scan), "--ocr")
    assert code == 0 and report["files_added"] == 1 and report["files_failed"] == []
    code, found = run("search", "glider winch cable", "-k", "1")
    assert code == 0 and found["hits"][0]["source"] == str(scan.resolve()) and "winch" in found["hits"][0]["text"]


def test_tune_from_and_the_gate_through_the_cli(home: Path, examples: Path, tmp_path: Path) -> None:
    code, first = run("tune", str(examples), "--max-steps", "3", "--learning-rate", "0.01", "--eval", str(examples))
    assert code == 0 and first["activated"] and first["gate"] is None and first["settings"]
    assert Path(first["files"]["metrics"]).is_file() and Path(first["files"]["loss_curve"]).is_file()
    new = tmp_path / "new.jsonl"
    new.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Summarise memo {i} about the valve."},
                                                      {"role": "assistant", "content": f"Summary: the valve memo {i} is filed. Kind regards, Support."}]})
                             for i in range(4)) + "\n")
    code, second = run("tune", str(new), "--from", "house", "--eval", str(examples), "--gate", "loss", "--max-steps", "2")
    assert code == 0 and second["adapter"] == "house@v2" and second["parent"] == "house@v1" and second["replayed"] == 12
    assert second["gate"]["against"] == "house@v1"
    off = tmp_path / "off.jsonl"
    off.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Other thing {i}?"},
                                                      {"role": "assistant", "content": "zq xv kk " * 10}]})
                             for i in range(8)) + "\n")
    args = ["tune", str(off), "--eval", str(examples), "--gate", "loss", "--max-steps", "6", "--learning-rate", "0.01"]
    active = "house@v2" if second["activated"] else "house@v1"
    human = CliRunner().invoke(main, args)  # house@v3, held back: the text says what to do
    assert human.exit_code == 0 and "NOT activated" in human.stdout, human.stdout
    assert "hybrid adapters activate house@v3" in human.stdout and f"stays {active}" in human.stdout
    code, resumed = run("tune", str(examples), "--resume")
    assert code == 1 and "nothing to resume" in resumed["error"]["message"]
