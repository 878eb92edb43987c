"""A real PostgreSQL with pgvector for the tests: the ``pgserver`` wheel from PyPI bundles both.

One server per test session, in a temporary directory, on a Unix socket; each test gets a schema
of its own (``fresh_url``), so tests never see each other's tables. pgvector is created once, in
``public``, which every test's ``search_path`` keeps after its own schema.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from urllib.parse import quote

from tests.support.tools import missing_tool

_counter = itertools.count(1)


def start_server(directory: Path):
    """Start PostgreSQL in ``directory``; returns the ``pgserver`` handle (``get_uri()``, ``cleanup()``)."""
    try:
        import pgserver
    except ImportError:
        missing_tool("needs the pgserver wheel (make install: it is a dev dependency)")
    server = pgserver.get_server(directory, cleanup_mode="stop")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    return server


def fresh_url(base: str, label: str = "t") -> str:
    """A URL of ``base``'s database whose tables go into a new, empty schema."""
    import psycopg

    schema = f"{label}_{next(_counter)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    options = quote(f"-csearch_path={schema},public")
    return f"{base}{'&' if '?' in base else '?'}options={options}"
