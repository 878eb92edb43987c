"""Pipeline.search with `search.reranker`: the same passages, the top `rerank_depth` reordered."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from hybrid import BadRequestError, Pipeline, load_settings

# Lower case after the first word, and no word of a file name ("engine report.pdf"): either would
# add a regrouping step (documents about a name, documents the query names).
QUERY = "power and fuel in the field"
ALL_CHUNKS = 6  # one chunk per page of the conftest CORPUS


def _reranking(pipeline: Pipeline, model_dir: Path, **search: object) -> Pipeline:
    settings = load_settings(adapter="none", min_score=0.2, search={"reranker": str(model_dir), **search})
    return Pipeline(settings, embedder=pipeline.embedder)


def _by_model(model_dir: Path, query: str, hits: list) -> list[str]:
    """Chunk ids of ``hits``, best first by the cross-encoder's own `predict`."""
    scores = CrossEncoder(str(model_dir), device="cpu").predict([(query, h.text) for h in hits])
    return [h.chunk_id for _, h in sorted(zip(scores, hits, strict=True), key=lambda pair: -float(pair[0]))]


def test_reranker_reorders_only_the_top_rerank_depth(pipeline, tiny_cross_encoder_dir: Path) -> None:
    depth = 4
    plain = pipeline.search(QUERY, k=ALL_CHUNKS)
    assert len(plain) == ALL_CHUNKS and pipeline.reranker() is None
    expected = _by_model(tiny_cross_encoder_dir, QUERY, plain[:depth]) + [h.chunk_id for h in plain[depth:]]
    assert expected != [h.chunk_id for h in plain], "the model agrees with the fused order: nothing is tested"

    reranked = _reranking(pipeline, tiny_cross_encoder_dir, rerank_depth=depth).search(QUERY, k=ALL_CHUNKS)

    assert [h.chunk_id for h in reranked] == expected
    # The same passages with the same cosine scores: reranking changes the order, nothing else.
    assert sorted(reranked, key=lambda h: h.chunk_id) == sorted(plain, key=lambda h: h.chunk_id)


def test_reranker_sees_rerank_depth_passages_even_when_k_is_smaller(pipeline, tiny_cross_encoder_dir: Path) -> None:
    depth, k = 5, 2
    pool = pipeline.search(QUERY, k=depth)
    expected = _by_model(tiny_cross_encoder_dir, QUERY, pool)[:k]
    assert expected != [h.chunk_id for h in pool[:k]], "the top k would be the same without the reranker"

    hits = _reranking(pipeline, tiny_cross_encoder_dir, rerank_depth=depth).search(QUERY, k=k)

    assert [h.chunk_id for h in hits] == expected


def test_reranker_applies_after_the_source_and_page_filters(pipeline, tiny_cross_encoder_dir: Path) -> None:
    filters = {"sources": ["*engine*"], "pages": (2, 3)}
    hits = _reranking(pipeline, tiny_cross_encoder_dir).search(QUERY, k=5, **filters)
    assert {(Path(h.source).name, h.page) for h in hits} == {("engine report.pdf", 2), ("engine report.pdf", 3)}


def test_reranker_is_read_from_the_environment(home, pipeline, tiny_cross_encoder_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HYBRID_SEARCH__RERANKER", str(tiny_cross_encoder_dir))
    monkeypatch.setenv("HYBRID_SEARCH__RERANK_DEPTH", "3")
    settings = load_settings()
    assert settings.search.reranker == str(tiny_cross_encoder_dir) and settings.search.rerank_depth == 3
    assert Pipeline(settings, embedder=pipeline.embedder).reranker() is not None


def test_a_reranker_that_cannot_load_fails_the_search_clearly(pipeline, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    broken = _reranking(pipeline, missing)
    with pytest.raises(BadRequestError) as info:
        broken.search(QUERY)
    assert str(missing) in str(info.value) and "search.reranker" in str(info.value)
