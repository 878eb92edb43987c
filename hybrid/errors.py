"""Errors raised by the hybrid core.

Library code raises; the boundaries (CLI, HTTP) translate. Each error class declares, side by
side, its stable ``code`` (the HTTP ``error.code`` and the CLI's ``--json`` error), the HTTP
``status`` and the CLI ``exit_code`` it maps to: the classes are the one table both faces read.
The leaves' errors (``ingest.errors``, ``tune.errors``) declare their public ``code`` next to
each class, so renaming a class changes no code; ``from_leaf`` gives them their status from
``LEAF_STATUS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class HybridError(Exception):
    """Base class of every error the hybrid core raises on purpose."""

    code = "hybrid_error"
    status = 500
    exit_code = 1  # failure, nothing changed (CONTRACT.md)
    retry_after: int | None = None  # seconds, for a 503: when to try again (the Retry-After header)


class ConfigError(HybridError):
    """The configuration (hybrid.toml, HYBRID_* variables, flags) is invalid."""

    code = "invalid_config"
    status = 500
    exit_code = 2  # usage: the command line or the configuration is wrong


class BadRequestError(HybridError):
    """A request names something invalid: an empty question, a bad ``k``, an unknown adapter."""

    code = "bad_request"
    status = 400


class NotFoundError(HybridError):
    """Something the request names does not exist (an index, an adapter)."""

    code = "not_found"
    status = 404


class ConflictError(HybridError):
    """The request conflicts with work in progress (another ingest is writing the index)."""

    code = "conflict"
    status = 409


class NotReadyError(HybridError):
    """Models or the index are not loaded yet."""

    code = "not_ready"
    status = 503


class UnavailableError(HybridError):
    """A service the answer needs is down: the index's database (a PostgreSQL store)."""

    code = "unavailable"
    status = 503
    retry_after = 5


# The status of a leaf error, by its declared code: what is not here is the caller's bad input.
LEAF_STATUS: dict[str, type[HybridError]] = {
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "index_unavailable": UnavailableError,
}


class LeafError(Protocol):
    """What the leaves' error base classes declare."""

    code: str


def from_leaf(exc: LeafError) -> HybridError:
    """The ``HybridError`` a leaf's error (``ingest.IngestError``, ``tune.TuneError``) becomes:
    its message and declared ``code``, and the status ``LEAF_STATUS`` gives that code (400 else)."""
    error = LEAF_STATUS.get(exc.code, BadRequestError)(str(exc))
    error.code = exc.code
    return error


@contextlib.contextmanager
def leaf_errors() -> Iterator[None]:
    """Re-raise the leaves' errors as ``HybridError`` so the CLI and HTTP map them one way."""
    import ingest  # the leaves' errors load lazily, without torch
    import tune

    try:
        yield
    except (ingest.IngestError, tune.TuneError) as exc:
        raise from_leaf(exc) from exc
