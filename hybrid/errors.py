"""Errors raised by the hybrid core.

Library code raises; the boundaries (CLI, HTTP) translate. Each error carries a stable ``code``
that the HTTP layer returns as ``error.code`` and an HTTP status it maps to.
"""

from __future__ import annotations


class HybridError(Exception):
    """Base class of every error the hybrid core raises on purpose."""

    code = "hybrid_error"
    status = 500


class ConfigError(HybridError):
    """The configuration (hybrid.toml, HYBRID_* variables, flags) is invalid."""

    code = "invalid_config"
    status = 500


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
