"""Request-size limits, enforced before a body is read: 413 JSON, never a half-read upload.

``BodyLimit`` is pure ASGI middleware. A request whose ``Content-Length`` is over the limit is
answered at once, without reading a byte of its body; a chunked request (no length) is counted
as it streams and cut off at the limit, whatever the route was doing with it. Upload routes
(``UPLOAD_PATHS``) get a larger limit than JSON routes.

Field limits (question length, ``k``, ``max_tokens``) live in the request schemas: 422.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20  # JSON bodies: a 4,000-character question is ~16 KB at most
MAX_UPLOAD_BYTES = 64 << 20  # one PDF upload
UPLOAD_PATHS = frozenset({"/v1/documents"})


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 ``too_large`` for bodies over ``max_body`` (``max_upload`` on upload routes).

    Limits default to the module's constants, read per request (tests lower them).
    """

    def __init__(self, app: ASGIApp, max_body: int | None = None, max_upload: int | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def limit_for(self, path: str) -> int:
        if path.rstrip("/") in UPLOAD_PATHS:
            return self.max_upload if self.max_upload is not None else MAX_UPLOAD_BYTES
        return self.max_body if self.max_body is not None else MAX_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        length = _content_length(scope)
        if length == -1:
            await _reply(send, 400, "bad_request", "the Content-Length header is not a whole number")
            return
        if length is not None and length > limit:
            await _reply(send, 413, "too_large", _too_large(length, limit))
            return

        received = 0
        exceeded = False
        responded = False  # the app's own response has started

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal responded
            if exceeded and not responded:
                return  # whatever the app makes of the cut-off body, the client gets the 413
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            if responded:
                raise
        if exceeded and not responded:
            await _reply(send, 413, "too_large", _too_large(received, limit, streamed=True))


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent, -1 when unreadable."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None


def _too_large(size: int, limit: int, *, streamed: bool = False) -> str:
    got = f"more than {limit:,}" if streamed else f"{size:,}"
    return f"the request body has {got} bytes; the limit for this route is {limit:,} bytes"


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
