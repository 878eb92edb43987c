"""Bearer keys: ``HYBRID_API_KEY`` guards every /v1 route, ``HYBRID_ADMIN_KEY`` the admin routes.

The rules (docs/reference/http.md, "Keys"):

- No key set: every route is open, which ``hybrid serve`` allows only on a loopback address
  unless ``--insecure`` is given.
- ``HYBRID_API_KEY`` set: /v1 routes need ``Authorization: Bearer <key>``, the query key or the
  admin key; 401 without a key or with a wrong one.
- Admin routes (adapter activation, document uploads, jobs) need the admin key: 401 without a
  key or with a wrong one, 403 with the query key. With ``HYBRID_API_KEY`` set and
  ``HYBRID_ADMIN_KEY`` unset they are closed (403 for every key): a server guarded for queries
  never leaves its index and adapters open to anyone holding the query key.

Keys are compared in constant time (``hmac.compare_digest``).

The routes check keys as dependencies, which FastAPI runs after it has read the body. For the
gated routes (``serve.concurrency``) ``QueryKeyFirst`` checks the same rule as soon as the
headers are in, so a request without the key never reads a body, waits in the queue or takes
a slot.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from hybrid import Settings
from serve.deps import get_settings
from serve.errors import error_response

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _matches(given: str, key: SecretStr | None) -> bool:
    return key is not None and hmac.compare_digest(given.encode(), key.get_secret_value().encode())


def _bearer(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; 401 when there is none."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(401, "missing key: send 'Authorization: Bearer <key>'", headers=_CHALLENGE)
    return given.strip()


def check_query_key(settings: Settings, authorization: str | None) -> None:
    """401 (``HTTPException``) unless ``authorization`` carries the query key or the admin key,
    when keys are set."""
    if settings.api_key is None:
        return
    given = _bearer(authorization)
    if not (_matches(given, settings.api_key) or _matches(given, settings.admin_key)):
        raise HTTPException(401, "wrong key", headers=_CHALLENGE)


def require_query_key(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """401 unless the request carries the query key or the admin key (when keys are set)."""
    check_query_key(settings, authorization)


def require_admin_key(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """The admin key: 401 without a key or with a wrong one, 403 with the query key.

    Open only when neither key is set; closed (403) when only ``HYBRID_API_KEY`` is set.
    """
    if settings.api_key is None and settings.admin_key is None:
        return
    given = _bearer(authorization)
    if _matches(given, settings.admin_key):
        return
    if _matches(given, settings.api_key):
        if settings.admin_key is None:
            raise HTTPException(403, "admin routes are closed: the server has no HYBRID_ADMIN_KEY; set it and restart")
        raise HTTPException(403, "this route needs the admin key (HYBRID_ADMIN_KEY); the query key is not enough")
    raise HTTPException(401, "wrong key", headers=_CHALLENGE)


class QueryKeyFirst:
    """Pure ASGI: 401 for a request to one of ``paths`` without the query key, before its body.

    Args:
        get_settings: the server's settings, or None before start-up (then the routes' own
            dependency checks, as always).
    """

    def __init__(self, app: ASGIApp, get_settings: Callable[[], Settings | None], paths: frozenset[str]) -> None:
        self.app = app
        self.get_settings = get_settings
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.get_settings()
        if settings is not None and scope["type"] == "http" and scope["path"] in self.paths:
            authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
            try:
                check_query_key(settings, authorization)
            except HTTPException as exc:
                await error_response(401, "unauthorized", str(exc.detail), exc.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)
