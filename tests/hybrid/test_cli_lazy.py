"""Fast when there is nothing to do: models load only when a text needs embedding or a
question needs answering, so help, listings and an ingest of unchanged files stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import ingest
from hybrid.cli import main
from tests.support.fake_embedder import FakeEmbedder
from tests.support.pdfs import make_pdf

# What must never be imported without a model to run, a PDF to read or a server to start.
NEVER = (
    "torch", "transformers", "sentence_transformers", "peft", "fastapi", "uvicorn", "matplotlib",
    "langchain_core", "pypdf",
)  # fmt: skip
# Help needs no index either.
NOT_FOR_HELP = ("numpy", "faiss", "pydantic_settings")

# Runs each command through the CLI's main in one fresh interpreter and reports, after each,
# its exit code, its stdout and which of the watched modules are loaded by then. The embedder
# loader is replaced by one that fails, so a model load shows as a failed command too.
_SCRIPT = """
import contextlib, io, json, sys
import ingest

def refuse(*args, **kwargs):
    raise RuntimeError("the embedding model was loaded")

ingest.load_embedder = refuse
from hybrid.cli import main

watched, results = json.loads(sys.argv[1]), []
for args in json.loads(sys.argv[2]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(args, prog_name="hybrid")
        except SystemExit as exc:
            code = exc.code
    loaded = [m for m in watched if m in sys.modules]
    results.append({"args": args, "code": code, "stdout": out.getvalue(), "loaded": loaded})
print(json.dumps(results))
"""

HELP = [["--help"], ["ingest", "--help"], ["docs", "--help"], ["adapters", "--help"], ["serve", "--help"]]


@pytest.fixture
def indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus_dir: Path, fake_embedder) -> Path:
    """A HYBRID_HOME whose index holds `corpus_dir`, built with the fake embedder."""
    home = tmp_path / "home"
    monkeypatch.setenv("HYBRID_HOME", str(home))
    report = ingest.ingest_paths([corpus_dir], home / "index", fake_embedder)
    assert report.files_added == 3
    return home


def test_help_listings_and_an_unchanged_ingest_import_no_model_library(indexed: Path, corpus_dir: Path) -> None:
    commands = [*HELP, ["adapters", "list", "--json"], ["docs", "list", "--json"], ["ingest", str(corpus_dir), "--json"]]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps([*NEVER, *NOT_FOR_HELP]), json.dumps(commands)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    results = json.loads(done.stdout.splitlines()[-1])
    assert [r["args"] for r in results] == commands
    for result in results:
        assert result["code"] == 0, (result["args"], done.stderr)
        forbidden = NEVER + (NOT_FOR_HELP if "--help" in result["args"] else ())
        assert not set(result["loaded"]) & set(forbidden), result
    *_, adapters, documents, ingested = results
    assert json.loads(adapters["stdout"])["adapters"] == []
    assert len(json.loads(documents["stdout"])["documents"]) == 3
    report = json.loads(ingested["stdout"])
    assert (report["files_unchanged"], report["files_added"], report["files_updated"]) == (3, 0, 0)
    assert "Answers grounded in your own documents" in results[0]["stdout"]


@pytest.fixture
def loads(indexed: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder) -> list[tuple]:
    """The calls of `ingest.load_embedder`, which hands out the fake embedder."""
    calls: list[tuple] = []

    def load(*args, **kwargs):
        calls.append(args)
        return fake_embedder

    monkeypatch.setattr(ingest, "load_embedder", load)
    fake_embedder.calls = 0  # building the index embedded with it
    return calls


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_the_embedder_loads_once_a_file_needs_embedding(loads: list, corpus_dir: Path, tmp_path: Path, fake_embedder) -> None:
    code, report = run("ingest", str(corpus_dir))
    assert code == 0 and report["files_unchanged"] == 3
    code, listed = run("docs", "list")
    assert code == 0 and len(listed["documents"]) == 3
    code, _ = run("ingest", str(tmp_path / "no such folder"))
    assert code == 1
    assert loads == [] and fake_embedder.calls == 0
    make_pdf(tmp_path / "new" / "pump.pdf", ["The pump seal was replaced after the leak test."])
    code, report = run("ingest", str(corpus_dir), str(tmp_path / "new"))
    assert code == 0 and (report["files_added"], report["files_unchanged"]) == (1, 3)
    assert loads == [("fake-hash",)] and fake_embedder.calls > 0  # the index names its embedder
    code, found = run("search", "pump seal leak", "-k", "1")
    assert code == 0 and Path(found["hits"][0]["source"]).name == "pump.pdf"


def test_a_model_that_changed_size_since_the_index_was_built_is_refused_when_it_loads(
    indexed: Path, monkeypatch: pytest.MonkeyPatch, corpus_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(ingest, "load_embedder", lambda *a, **k: FakeEmbedder(dim=128))
    code, report = run("ingest", str(corpus_dir))
    assert code == 0 and report["files_unchanged"] == 3  # nothing to embed: the model never loads
    make_pdf(tmp_path / "new" / "pump.pdf", ["The pump seal was replaced after the leak test."])
    code, error = run("ingest", str(tmp_path / "new"))
    assert code == 1 and error["error"]["code"] == "index_mismatch"
    assert "dim 128" in error["error"]["message"] and "dim 256" in error["error"]["message"]
    code, listed = run("docs", "list")
    assert code == 0 and len(listed["documents"]) == 3  # nothing of the failed run was stored


def test_a_model_that_fails_to_load_leaves_no_half_made_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus_dir: Path
) -> None:
    def fail(*args, **kwargs):
        raise ingest.IngestError("cannot load embedder from directory /models/gone")

    home = tmp_path / "home"
    monkeypatch.setenv("HYBRID_HOME", str(home))
    monkeypatch.setattr(ingest, "load_embedder", fail)
    code, error = run("ingest", str(corpus_dir))
    assert code == 1 and "/models/gone" in error["error"]["message"]
    assert not (home / "index").exists()
    code, error = run("docs", "list")
    assert code == 1 and error["error"]["code"] == "not_found"
