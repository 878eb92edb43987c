"""Keyword search: BM25 over the chunk texts with SQLite's FTS5.

Dense vectors find paraphrases; BM25 finds the rare exact words a dense model blurs: product
names, figures, codes, legal terms. `chunks_fts` is an external-content FTS5 table over
`chunks.text`, kept in step by triggers, so it commits and rolls back with the chunks.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

FTS_TABLE = "chunks_fts"

_SCHEMA = (
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
        text, content='chunks', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    f"""CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO {FTS_TABLE} (rowid, text) VALUES (new.id, new.text);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
)

# Words too common to say anything about which passage answers a question.
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should
    so some such than that the their theirs them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with
    would you your yours""".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 32  # query words searched for, the first ones (both stores)
# See rare_words(). Measured (docs/how-to/search.md): at max(10, 0.2%) an accident number
# or registration in the question finds its NTSB report first for 36 of 40 questions (22
# without), and the SEC 10-Q figures stay as they were; at 1% the SEC figures drop.
RARE_MIN_CHUNKS = 10
RARE_FRACTION = 0.002


def create(conn: sqlite3.Connection) -> None:
    """Create the FTS table and triggers, and index existing chunks if the table is new."""
    existed = has_fts(conn)
    for statement in _SCHEMA:
        conn.execute(statement)
    if not existed:  # an index made before keyword search existed: index what it holds
        conn.execute(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}) VALUES ('rebuild')")


def has_fts(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FTS_TABLE,)
    ).fetchone()
    return row is not None


def content_words(text: str) -> list[str]:
    """The distinct words of `text` worth searching for, lowercased, in order."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in _STOPWORDS and (len(word) > 1 or word.isdigit()) and word not in words:
            words.append(word)
    return words[:MAX_TERMS]


def rare_words(conn: sqlite3.Connection, text: str, total: int) -> list[str]:
    """The words of `text` found in only a few chunks: identifiers, codes, names, terms.

    A word is rare when at most max(RARE_MIN_CHUNKS, RARE_FRACTION * total) chunks hold it.
    Such a word pins a passage down far better than its share of a BM25 sum suggests: a
    question about accident "CHI08CA047" is about the few chunks that contain it.
    """
    if not has_fts(conn):
        return []
    limit = max(RARE_MIN_CHUNKS, int(total * RARE_FRACTION))
    rare = []
    for word in content_words(text):
        # Count at most limit + 1 matches, so a common word costs no more than a rare one.
        found = conn.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ? LIMIT ?)",
            (f'"{word}"', limit + 1),
        ).fetchone()[0]
        if 0 < found <= limit:
            rare.append(word)
    return rare


def match_query(text: str) -> str | None:
    """An FTS5 query matching chunks that contain any content word of `text`, or None.

    Each word is quoted, so user text can never be read as FTS5 syntax (NEAR, column
    filters, *). Ranking by BM25 favours chunks with more, and rarer, of the words.
    """
    words = content_words(text)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def phrase_query(text: str) -> str | None:
    """An FTS5 query for `text` as a phrase (its words in order), or None if it has no words.

    FTS5 finds candidates fast; callers still check the exact text, since the tokenizer folds
    case and diacritics and stems words ("apples" matches "apple").
    """
    words = _WORD.findall(text.lower())
    return '"' + " ".join(words) + '"' if words else None


def search(
    conn: sqlite3.Connection,
    text: str,
    limit: int,
    *,
    sources: Sequence[str] | None = None,
    pages: tuple[int | None, int | None] = (None, None),
) -> list[int]:
    """Row ids of the `limit` chunks that best match `text` by BM25, best first.

    Args:
        sources: only chunks of these documents (None: all).
        pages: only chunks whose page is within (first, last), either end open if None.
    """
    query = match_query(text)
    if query is None or limit < 1 or not has_fts(conn):
        return []
    sql = [
        f"SELECT c.id FROM {FTS_TABLE} JOIN chunks AS c ON c.id = {FTS_TABLE}.rowid",
        f"WHERE {FTS_TABLE} MATCH ?",
    ]
    args: list[object] = [query]
    where, where_args = filter_sql(sources, pages, alias="c")
    if where:
        sql.append("AND " + where)
        args += where_args
    sql.append(f"ORDER BY bm25({FTS_TABLE}) LIMIT ?")
    args.append(limit)
    try:
        return [row[0] for row in conn.execute(" ".join(sql), args)]
    except sqlite3.OperationalError:  # a query FTS5 still rejects: keyword search finds nothing
        return []


def filter_sql(
    sources: Sequence[str] | None,
    pages: tuple[int | None, int | None],
    *,
    alias: str = "chunks",
    mark: str = "?",
) -> tuple[str, list[object]]:
    """A WHERE fragment (without WHERE) and its arguments for source and page filters.

    ``mark`` is the driver's placeholder: ``?`` for SQLite, ``%s`` for PostgreSQL (psycopg).
    """
    clauses: list[str] = []
    args: list[object] = []
    if sources is not None:
        clauses.append(f"{alias}.source IN ({','.join([mark] * len(sources))})" if sources else "1 = 0")
        args += list(sources)
    first, last = pages
    if first is not None:
        clauses.append(f"{alias}.page >= {mark}")
        args.append(first)
    if last is not None:
        clauses.append(f"{alias}.page <= {mark}")
        args.append(last)
    return " AND ".join(clauses), args
