"""Hybrid retrieval: BM25 keyword search fused with dense search, filters, and scores.

The tests with ``location`` run on both stores: an index directory and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest import Index, IngestError, SearchFilterError, ingest_paths, open_index, remove_documents
from ingest.keyword import match_query
from ingest.rank import match_sources, reciprocal_rank_fusion
from tests.support.fake_embedder import FakeEmbedder
from tests.support.pdfs import make_pdf

PARTS = [
    "Valve service. Replace the bleed valve when the indicator shows amber.",
    "Part XK-4471 is the only approved seal for the bleed valve housing.",
    "Cabin pressure is held by two outflow valves controlled by the pressure controller.",
]


class BlindEmbedder(FakeEmbedder):
    """Gives every text the same vector: dense search cannot tell passages apart."""

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def _names_pages(hits) -> list[tuple[str, int]]:
    return [(Path(h.source).name, h.page) for h in hits]


@pytest.fixture
def parts_index(tmp_path: Path, location) -> Path | str:
    make_pdf(tmp_path / "docs" / "parts.pdf", PARTS)
    make_pdf(tmp_path / "docs" / "other.pdf", ["Tyre pressure is checked daily.", "Seal kits."])
    ingest_paths([tmp_path / "docs"], location, BlindEmbedder(name="blind"))
    return location


def test_keyword_ranking_finds_an_exact_code_that_dense_search_cannot(parts_index):
    with open_index(parts_index, BlindEmbedder(name="blind")) as index:
        for mode in ("hybrid", "keyword"):
            assert _names_pages(index.search("which seal is XK-4471?", k=1, mode=mode)) == [
                ("parts.pdf", 2)
            ]


def test_every_hit_scores_its_cosine_whichever_ranking_found_it(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    query = "turbine blade fatigue geese"
    with Index.open(index_dir, embedder) as index:
        hits = index.search(query, k=5)
        q = embedder.embed([query])[0]
        for hit in hits:
            expected = float(embedder.embed([hit.text])[0] @ q)
            assert hit.score == pytest.approx(expected, abs=1e-5)


def test_keyword_index_follows_updates_and_removals(tmp_path, index_dir, embedder):
    path = make_pdf(tmp_path / "manual.pdf", ["The zebracorn gasket is blue."])
    ingest_paths([path], index_dir, embedder)
    with Index.open(index_dir, embedder) as index:
        assert index.search("zebracorn", k=1, mode="keyword")
    make_pdf(path, ["The gasket is now green."])
    ingest_paths([path], index_dir, embedder)
    with Index.open(index_dir, embedder) as index:
        assert index.search("zebracorn", k=3, mode="keyword") == []
        assert index.search("green gasket", k=1, mode="keyword")[0].page == 1
        remove_documents(index, [path])
        assert index.search("green gasket", k=3, mode="keyword") == []
    with sqlite3.connect(index_dir / "store.sqlite") as conn:
        fts_rows = conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert fts_rows == chunks == 0


def test_an_index_made_before_keyword_search_gets_it_at_the_next_ingest(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    with sqlite3.connect(index_dir / "store.sqlite") as conn:
        conn.execute("DROP TRIGGER chunks_fts_insert")
        conn.execute("DROP TRIGGER chunks_fts_delete")
        conn.execute("DROP TABLE chunks_fts")
    with Index.open(index_dir, embedder) as index:  # a reader: dense results, no error
        assert index.search("windshield geese", k=1, mode="keyword") == []
        assert index.search("windshield geese", k=1)[0].page == 2
        assert index.mentions("Geese") and not index.mentions("gee")  # found by LIKE
    ingest_paths([corpus], index_dir, embedder)  # nothing changed, but the table is built
    with Index.open(index_dir, embedder) as index:
        assert _names_pages(index.search("windshield geese", k=1, mode="keyword"))[0][1] == 2


@pytest.mark.parametrize(
    "query",
    ['"unbalanced quote', "NEAR(a b)", "text: column", "wild* card", "a AND OR NOT b", "-", "?"],
)
def test_search_text_is_never_read_as_query_syntax(corpus, location, embedder, query):
    ingest_paths([corpus], location, embedder)
    with open_index(location, embedder) as index:
        index.search(query, k=3)  # no error
        index.search(query, k=3, mode="keyword")


def test_mentions_are_whole_words_found_through_the_keyword_index(tmp_path, location, embedder):
    path = make_pdf(tmp_path / "m.pdf", ["Meta and AT&T reported. The metadata of Zurich files.", "Apples."])
    ingest_paths([path], location, embedder)
    with open_index(location, embedder) as index:
        assert index.mentions("meta") and index.mentions("AT&T") and index.mentions("zurich")
        assert not index.mentions("apple")  # the stemmer matches "Apples"; the exact check does not
        assert not index.mentions("data") and not index.mentions("T&T")
        assert index.mention_counts("Meta", [str(path)]) == {str(path): 1}


def test_match_query_quotes_words_and_drops_stopwords():
    assert match_query('What is the "XK-4471" seal?') == '"xk" OR "4471" OR "seal"'
    assert match_query("what is the") is None


def test_source_and_page_filters(corpus, index_dir, embedder):
    ingest_paths([corpus], index_dir, embedder)
    with Index.open(index_dir, embedder) as index:
        assert {Path(h.source).name for h in index.search("the", k=10, sources=["engines.pdf"])} == {
            "engines.pdf"
        }
        hits = index.search("fuel pump turbine blade", k=10, sources=["*ENGINE*"], pages=(3, None))
        assert _names_pages(hits) == [("engines.pdf", 3)]
        hits = index.search("geese windshield", k=10, pages=(None, 1))
        assert hits and all(h.page == 1 for h in hits)
        with pytest.raises(SearchFilterError, match="no indexed document matches"):
            index.search("geese", sources=["*missing*"])
        with pytest.raises(SearchFilterError, match="empty"):
            index.search("geese", pages=(3, 2))
        with pytest.raises(SearchFilterError, match="numbered from 1"):
            index.search("geese", pages=(0, 2))
        with pytest.raises(IngestError, match="unknown search mode"):
            index.search("geese", mode="fuzzy")


def test_match_sources_by_path_name_or_glob_ignoring_case():
    sources = ["/data/2023 Q3 AAPL.pdf", "/data/2023 Q3 MSFT.pdf", "/other/notes.pdf"]
    assert match_sources(["*aapl*"], sources) == ["/data/2023 Q3 AAPL.pdf"]
    assert match_sources(["notes.pdf"], sources) == ["/other/notes.pdf"]
    assert match_sources(["/data/*"], sources) == sources[:2]
    assert match_sources(["nothing"], sources) == []


def test_reciprocal_rank_fusion_rewards_agreement():
    # 3 is second in both lists and beats 1 and 2, each first in only one.
    assert reciprocal_rank_fusion([[1, 3, 4], [2, 3, 5]])[0] == 3
    assert reciprocal_rank_fusion([[1, 2], []]) == [1, 2]
    assert reciprocal_rank_fusion([]) == []


def test_a_rare_identifier_outvotes_paraphrases_that_lack_it(tmp_path, location, embedder):
    # Dense search (the fake embedder, like a real one, barely weighs one odd token) favours
    # the pages that share the question's common words; the identifier is on one page only.
    pages = [f"The airplane engine lost power during the landing approach, report {n}." for n in range(30)]
    pages[17] = "Report CHI08CA047. The pilot stopped on the runway."
    make_pdf(tmp_path / "reports.pdf", pages)
    ingest_paths([tmp_path / "reports.pdf"], location, embedder)
    question = "Why did the airplane engine lose power during the landing approach in CHI08CA047?"
    with open_index(location, embedder) as index:
        assert index.search(question, k=1, mode="dense")[0].page != 18
        assert index.search(question, k=1)[0].page == 18
