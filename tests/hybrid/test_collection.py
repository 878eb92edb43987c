"""Collection: the index and its models, loaded once and only when a text needs embedding."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid import BadRequestError, load_settings
from hybrid.collection import Collection, checked_k, checked_text
from hybrid.limits import K_MAX, MAX_QUESTION_CHARS


@pytest.fixture
def collection(home, corpus_dir) -> Collection:
    made = Collection(load_settings())
    assert made.ingest([corpus_dir]).files_added == 3
    return made


def test_it_ingests_lists_searches_and_removes(collection, corpus_dir) -> None:
    assert [Path(d["source"]).name for d in collection.documents()] == sorted(p.name for p in corpus_dir.glob("*.pdf"))
    hits = collection.search("fuel selector empty tank", k=2)
    assert len(hits) == 2 and Path(hits[0].source).name == "engine report.pdf"
    removed = collection.remove([corpus_dir / "safety.pdf"])
    assert [Path(s).name for s in removed] == ["safety.pdf"] and len(collection.documents()) == 2


def test_listing_an_existing_index_loads_no_model(collection, home, monkeypatch) -> None:
    import ingest

    monkeypatch.setattr(ingest, "load_embedder", lambda *a, **k: pytest.fail("the embedder was loaded"))
    reopened = Collection(load_settings())
    assert len(reopened.documents()) == 3 and reopened.loaded_embedder is None
    assert reopened.reload() > 0 and reopened.reranker() is None


def test_a_closed_collection_reopens_on_the_next_search(collection) -> None:
    collection.close()
    assert collection.search("revenue grew", k=1)[0].page == 1


@pytest.mark.parametrize("k", [0, K_MAX + 1, "3", True, 2.5])
def test_k_out_of_range_is_a_bad_request(k) -> None:
    with pytest.raises(BadRequestError, match="k must be a whole number"):
        checked_k(k)


@pytest.mark.parametrize(("text", "named"), [("  ", "empty"), ("x" * (MAX_QUESTION_CHARS + 1), "limit")])
def test_empty_or_overlong_text_is_a_bad_request(text, named) -> None:
    with pytest.raises(BadRequestError, match=named):
        checked_text(text, "query")
    assert checked_text("  fuel  ", "query") == "fuel"
