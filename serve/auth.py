"""Bearer keys: ``HYBRID_API_KEY`` guards every /v1 route, ``HYBRID_ADMIN_KEY`` the admin routes.

The rules (docs/reference/http.md, "Keys"):

- No key set: every route is open, on a loopback address only unless ``insecure`` is set
  (``--insecure``, ``HYBRID_INSECURE=1``). ``hybrid serve`` refuses to start on another
  address; ``LoopbackWithoutKeys`` holds the same rule in the app however it is started
  (``create_app`` under any ASGI server): a connection that arrived on an address other than
  loopback gets 403. Equal query and admin keys are refused by the settings themselves.
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
import ipaddress
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from hybrid import Settings
from hybrid.config import unsafe_bind
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


class LoopbackWithoutKeys:
    """Pure ASGI: 403 for every request that reached the server on an address other than
    loopback while it has no ``HYBRID_API_KEY`` and ``insecure`` is not set.

    The address is the server's end of the connection (ASGI ``scope["server"]``), so a server
    bound to 0.0.0.0 still answers on 127.0.0.1. A name rather than an address there (an
    in-process test client) or none (a Unix socket) is not a network connection and passes.
    """

    def __init__(self, app: ASGIApp, get_settings: Callable[[], Settings | None]) -> None:
        self.app = app
        self.get_settings = get_settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.get_settings()
        server = scope.get("server") if scope["type"] in ("http", "websocket") else None
        if settings is not None and server and _is_address(server[0]) and unsafe_bind(settings, server[0]):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            message = (f"this server answers no requests on {server[0]} without keys: set HYBRID_API_KEY "
                       "(and HYBRID_ADMIN_KEY), or HYBRID_INSECURE=1 to accept anyone on the network")
            await error_response(403, "keys_required", message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
