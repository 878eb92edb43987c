"""Keyword ranking in PostgreSQL: BM25 over a postings table, as SQLite's FTS5 ranks.

PostgreSQL's own ``ts_rank`` and ``ts_rank_cd`` weigh every query word alike: a question's
common words ("company", "quarter") outvote the rare one that pins the answer down. Measured on
the SEC 10-Q questions (``bench/stores.py``), fusing ``ts_rank_cd`` with the dense ranking lost
0.069 page hit@5 against the embedded store's BM25. So this module scores BM25 itself, with
FTS5's constants (k1 1.2, b 0.75) and idf (``log((N - n + 0.5) / (n + 0.5))``, at least 1e-6).

The terms are the question's lexemes: ``to_tsvector`` of the question, the same parser and
stemming as the stored ``tsv`` column, so "81.8" or "10-Q" match as stored. The statistics come
from ``hybrid_postings`` (lexeme, chunk, term frequency, chunk length in distinct lexemes),
written with each document: document frequencies are counts on its primary key, and a score
reads only the postings of the question's lexemes. (Reading term frequencies out of each
candidate's ``tsvector`` instead cost 48 ms a question on 5,383 chunks, and grows with the
candidates.) A lexeme in more than half the chunks has an idf of about zero and is left out.
"""

from __future__ import annotations

import math
from typing import Any

from ingest import keyword, pg_sql

K1, B = 1.2, 0.75


def terms(conn: Any, text: str) -> dict[str, int]:
    """The lexemes of ``text`` and how many chunks hold each, in one statement; at most
    ``keyword.MAX_TERMS``, the first ones in ``text``. Stop words have no lexemes."""
    rows = conn.execute(
        f"""SELECT lexeme, (SELECT count(*) FROM hybrid_postings AS p WHERE p.lexeme = v.lexeme)
            FROM unnest(to_tsvector('{pg_sql.TS_CONFIG}', %s)) AS v ORDER BY positions[1] LIMIT %s""",
        (text, keyword.MAX_TERMS),
    ).fetchall()
    return {lexeme: int(df) for lexeme, df in rows}


def rare_terms(found: dict[str, int], total: int) -> dict[str, int]:
    """``ingest.keyword.rare_words`` for this store: the lexemes few chunks hold."""
    limit = max(keyword.RARE_MIN_CHUNKS, int(total * keyword.RARE_FRACTION))
    return {lexeme: df for lexeme, df in found.items() if 0 < df <= limit}


def bm25(
    conn: Any, found: dict[str, int], total: int, average_length: float, depth: int, where: str, args: list[object]
) -> list[int]:
    """Row ids of the ``depth`` chunks that best match the lexemes ``found`` (with their document
    frequencies) by BM25, best first; ties by row id.

    ``where`` filters the chunks, aliased ``c`` (``keyword.filter_sql(..., alias="c", mark="%s")``).
    """
    idf = {lexeme: math.log((total - df + 0.5) / (df + 0.5)) for lexeme, df in found.items() if 0 < df <= total / 2}
    if not idf:
        return []
    join = f"JOIN hybrid_chunks AS c ON c.id = p.chunk AND {where}" if where else ""
    sql = f"""
        WITH q(lexeme, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[]))
        SELECT p.chunk, sum(q.idf * p.tf * {K1 + 1} / (p.tf + {K1} * (1 - {B} + {B} * p.length / %s::float8))) AS score
        FROM q JOIN hybrid_postings AS p ON p.lexeme = q.lexeme {join}
        GROUP BY p.chunk ORDER BY score DESC, p.chunk LIMIT %s"""
    params = [list(idf), [max(1e-6, v) for v in idf.values()], max(average_length, 1.0), *args, depth]
    return [row[0] for row in conn.execute(sql, params)]


def index_document(conn: Any, source: str) -> int:
    """Write the postings of one stored document's chunks; returns the sum of their lengths."""
    conn.execute(
        """INSERT INTO hybrid_postings (lexeme, chunk, tf, length)
           SELECT t.lexeme, c.id, coalesce(array_length(t.positions, 1), 1), length(c.tsv)
           FROM hybrid_chunks AS c CROSS JOIN LATERAL unnest(c.tsv) AS t WHERE c.source = %s""",
        (source,),
    )
    return lengths(conn, source)


def lengths(conn: Any, source: str) -> int:
    """The sum of the chunk lengths (distinct lexemes) of one stored document."""
    return int(conn.execute("SELECT coalesce(sum(length(tsv)), 0) FROM hybrid_chunks WHERE source = %s", (source,)).fetchone()[0])
