"""Shared state in the PostgreSQL store's database: small JSON values every server reads.

What must be one truth across servers and is not a document lives here: today, which version
each adapter name stands for (``hybrid.adapters`` keeps the registry's activations in it, so an
activation through one server is used by all). A table ``hybrid_state (kind, key, value)``,
created on the first write; every write replaces one row in one statement.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ingest import pg_sql
from ingest.errors import IndexUnavailableError, IngestError

_CREATE = (
    "CREATE TABLE IF NOT EXISTS hybrid_state ("
    " kind text NOT NULL, key text NOT NULL, value jsonb NOT NULL, PRIMARY KEY (kind, key))"
)


class SharedState:
    """The values of one ``kind`` in the database at ``url``. Safe to share between threads."""

    def __init__(self, url: str, kind: str) -> None:
        self.url, self.kind = url, kind
        self._conn: Any = None
        self._lock = threading.Lock()

    def read(self, key: str) -> dict[str, Any]:
        """The value stored under ``key``; empty when there is none."""
        import psycopg

        def run(conn: Any) -> dict[str, Any]:
            try:
                row = conn.execute("SELECT value FROM hybrid_state WHERE kind = %s AND key = %s", (self.kind, key)).fetchone()
            except psycopg.errors.UndefinedTable:
                return {}  # nothing was ever written
            return row[0] if row and isinstance(row[0], dict) else {}

        return self._run(run)

    def write(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key``, replacing what was there, in one statement."""

        def run(conn: Any) -> None:
            with conn.transaction():
                conn.execute(_CREATE)
                conn.execute(
                    "INSERT INTO hybrid_state (kind, key, value) VALUES (%s, %s, %s::jsonb)"
                    " ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
                    (self.kind, key, json.dumps(value, default=str)),
                )

        self._run(run)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, query: Any) -> Any:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = pg_sql.connect(self.url, purpose="state")
                    return query(self._conn)
                except IngestError as exc:  # cannot connect
                    raise IndexUnavailableError(str(exc)) from exc
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._conn.close()  # a dropped connection: one new one, then a clear 503
                    if attempt == 2:
                        raise IndexUnavailableError(
                            f"the PostgreSQL store {pg_sql.display(self.url)} cannot be reached: {exc}"
                        ) from exc
        raise AssertionError("unreachable")
