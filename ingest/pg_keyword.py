"""Keyword ranking in PostgreSQL: BM25 over the full-text index, as SQLite's FTS5 ranks.

PostgreSQL's own ``ts_rank`` and ``ts_rank_cd`` weigh every query word alike: a question's
common words ("company", "quarter") outvote the rare one that pins the answer down. Measured on
the SEC 10-Q questions (``bench/stores.py``), fusing ``ts_rank_cd`` with the dense ranking lost
0.069 page hit@5 against the embedded store's BM25. So this module scores BM25 itself (k1 1.2,
b 0.75, FTS5's defaults): the query's lexemes (``to_tsvector`` of the question: the same parser
and stemming as the stored ``tsv`` column, so "81.8" or "10-Q" match as stored), their document
frequencies counted on the GIN index, and each candidate chunk's term frequencies read from its
``tsv``. A chunk's length is its count of distinct
lexemes; the store keeps their sum in ``hybrid_meta`` (``keyword_lengths``) for the average.

Candidates are the chunks holding a query lexeme that at most a fifth of the chunks hold (all
lexemes when none is that rare), so a question of common words does not score the whole store.
"""

from __future__ import annotations

import math
from typing import Any

from ingest import keyword, pg_sql

K1, B = 1.2, 0.75
# A word in more than this share of the chunks does not make a chunk a candidate by itself.
COMMON_SHARE = 0.2


def terms(conn: Any, text: str, total: int) -> dict[str, int]:
    """The lexemes of ``text`` (PostgreSQL's parser and stemmer, as the stored ``tsv`` column has
    them: "81.8" stays one term) and how many chunks hold each, in one statement; at most
    ``keyword.MAX_TERMS``, the first ones in ``text``. Stop words have no lexemes."""
    rows = conn.execute(
        f"""SELECT lexeme, (SELECT count(*) FROM (SELECT 1 FROM hybrid_chunks
                                    WHERE tsv @@ quote_literal(lexeme)::tsquery LIMIT %s) AS m)
            FROM unnest(to_tsvector('{pg_sql.TS_CONFIG}', %s)) ORDER BY positions[1] LIMIT %s""",
        (max(1, total), text, keyword.MAX_TERMS),
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
    frequencies) by BM25, best first.

    ``where`` filters the chunks, aliased ``c`` (``pg_sql.filter_sql(..., alias="c")``).
    """
    # FTS5's idf: log((N - n + 0.5) / (n + 0.5)), at least 1e-6 (a word in most chunks counts for nothing).
    idf = {lexeme: max(1e-6, math.log((total - df + 0.5) / (df + 0.5))) for lexeme, df in found.items() if df}
    if not idf:
        return []
    candidates = [lexeme for lexeme in idf if found[lexeme] <= COMMON_SHARE * total] or list(idf)
    sql = f"""
        WITH q(lexeme, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[]))
        SELECT c.id,
               sum(q.idf * t.tf * {K1 + 1} / (t.tf + {K1} * (1 - {B} + {B} * length(c.tsv) / %s::float8))) AS score
        FROM hybrid_chunks AS c
        CROSS JOIN LATERAL (SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM unnest(c.tsv)) AS t
        JOIN q ON q.lexeme = t.lexeme
        WHERE c.tsv @@ (SELECT string_agg(quote_literal(l), ' | ') FROM unnest(%s::text[]) AS l)::tsquery
        {f"AND {where}" if where else ""}
        GROUP BY c.id ORDER BY score DESC, c.id LIMIT %s"""
    params = [list(idf), list(idf.values()), max(average_length, 1.0), candidates, *args, depth]
    return [row[0] for row in conn.execute(sql, params)]


def lengths(conn: Any, source: str) -> int:
    """The sum of the chunk lengths (distinct lexemes) of one stored document."""
    return int(conn.execute("SELECT coalesce(sum(length(tsv)), 0) FROM hybrid_chunks WHERE source = %s", (source,)).fetchone()[0])
