"""The optional cross-encoder reranker, with a tiny random cross-encoder built by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from ingest import Hit, IngestError, Reranker

QUERY = "why did the engine lose power"
TEXTS = [
    "Aviation incident summary for the regional flight. The crew departed in clear weather.",
    "The engine lost power because of fuel starvation after the crew left the fuel selector on the empty tank.",
    "The airplane landed in a field. No one was injured. The operator changed its checklist.",
    "Quarterly results. Revenue grew 12 percent to 81 billion dollars, driven by services and wearables.",
    "Adverse events must be reported to the safety desk within 24 hours of awareness.",
]


def _hits() -> list[Hit]:
    # Scores fall with the list order, as an index returns them; the reranker must not touch them.
    return [
        Hit(f"/docs/report-{i}.pdf", i + 1, f"abc:p{i + 1}:c0", round(0.9 - 0.1 * i, 2), text)
        for i, text in enumerate(TEXTS)
    ]


def _model_order(model_dir: Path, query: str, hits: list[Hit]) -> list[str]:
    """Chunk ids best first by a separately loaded copy of the model's own `predict`."""
    scores = CrossEncoder(str(model_dir), device="cpu").predict([(query, h.text) for h in hits])
    return [h.chunk_id for _, h in sorted(zip(scores, hits, strict=True), key=lambda pair: -float(pair[0]))]


def test_rerank_orders_hits_by_the_cross_encoder_and_keeps_scores(tiny_cross_encoder_dir: Path) -> None:
    hits = _hits()
    expected = _model_order(tiny_cross_encoder_dir, QUERY, hits)
    assert expected != [h.chunk_id for h in hits], "the model agrees with the input order: nothing is tested"

    reranked = Reranker(str(tiny_cross_encoder_dir)).rerank(QUERY, hits)

    assert [h.chunk_id for h in reranked] == expected
    assert sorted(reranked, key=lambda h: h.chunk_id) == sorted(hits, key=lambda h: h.chunk_id)
    assert {h.chunk_id: h.score for h in reranked} == {h.chunk_id: h.score for h in _hits()}
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in _hits()], "the input list was reordered in place"


def test_rerank_depends_on_the_query(tiny_cross_encoder_dir: Path) -> None:
    reranker = Reranker(str(tiny_cross_encoder_dir))
    hits = _hits()
    for query in ("revenue grew percent", "adverse events safety desk"):
        assert [h.chunk_id for h in reranker.rerank(query, hits)] == _model_order(tiny_cross_encoder_dir, query, hits)


def test_rerank_of_fewer_than_two_hits_returns_them(tiny_cross_encoder_dir: Path) -> None:
    reranker = Reranker(str(tiny_cross_encoder_dir))
    one = _hits()[:1]
    assert reranker.rerank(QUERY, []) == []
    assert reranker.rerank(QUERY, one) == one


def test_missing_reranker_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "ms-marco-MiniLM-L-6-v2"
    with pytest.raises(IngestError) as info:
        Reranker(str(missing))
    message = str(info.value)
    assert str(missing) in message and "search.reranker" in message


@pytest.mark.parametrize(
    "files",
    [
        {},  # an empty folder
        {"config.json": "{not json"},
        {"config.json": '{"model_type": "bert", "num_labels": 1}'},  # a config but no weights or tokenizer
    ],
    ids=["empty", "bad-config", "no-weights"],
)
def test_malformed_reranker_directory_is_a_clear_error(tmp_path: Path, files: dict[str, str]) -> None:
    folder = tmp_path / "reranker"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(IngestError) as info:
        Reranker(str(folder))
    assert str(folder) in str(info.value) and "cross-encoder" in str(info.value)
