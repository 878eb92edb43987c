"""Request limits at the edge, enforced as the body arrives: too large (413), too slow (408).

``BodyLimit`` is pure ASGI middleware. A request whose ``Content-Length`` is over the limit is
answered at once, without reading a byte of its body; a chunked request (no length) is counted
as it streams and cut off at the limit, whatever the route was doing with it. Upload routes
(``UPLOAD_PATHS``) get a larger limit than JSON routes.

A body must also arrive in time: no byte for ``BODY_IDLE_S`` seconds, or not complete within
``BODY_TOTAL_S`` (``UPLOAD_TOTAL_S`` on upload routes) of the request's start, and the client
gets a 408 JSON error and the connection is closed. A client that sends the headers and then
only part of its body holds nothing for long: not a worker, not a slot of the gate (which reads
the whole body before it takes one, ``serve.concurrency``). Once the body is complete, later
reads (the server waiting to hear of a disconnect while it streams) are not timed.

Field limits (question length, ``k``, pages, ``max_tokens``) live in the request schemas: 422.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20  # JSON bodies: a 4,000-character question is ~16 KB at most
MAX_UPLOAD_BYTES = 64 << 20  # one PDF upload
UPLOAD_PATHS = frozenset({"/v1/documents"})
# Seconds. A JSON body of at most 1 MiB takes well under a second on any link a client of this
# server uses; 64 MiB at 1 Mbit/s takes about 9 minutes.
BODY_IDLE_S = 10.0
BODY_TOTAL_S = 30.0
UPLOAD_TOTAL_S = 600.0


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class BodyLimit:
    """413 ``too_large`` for bodies over ``max_body`` (``max_upload`` on upload routes); 408
    ``body_timeout`` for bodies that stall or take too long.

    Limits default to the module's constants, read per request (tests lower them).
    """

    def __init__(self, app: ASGIApp, max_body: int | None = None, max_upload: int | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def limit_for(self, path: str) -> int:
        if _is_upload(path):
            return self.max_upload if self.max_upload is not None else MAX_UPLOAD_BYTES
        return self.max_body if self.max_body is not None else MAX_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit_for(path)
        length = _content_length(scope)
        if length == -1:
            await _reply(send, 400, "bad_request", "the Content-Length header is not a whole number")
            return
        if length is not None and length > limit:
            await _reply(send, 413, "too_large", _too_large(length, limit))
            return

        deadline = time.monotonic() + (UPLOAD_TOTAL_S if _is_upload(path) else BODY_TOTAL_S)
        received = 0
        complete = length == 0 or scope.get("method") in ("GET", "HEAD", "OPTIONS")
        failure: str | None = None  # "large" or "slow", once the body broke a limit
        responded = False  # the app's own response has started

        async def counted() -> Message:
            nonlocal received, complete, failure
            if complete:
                return await receive()
            wait = min(BODY_IDLE_S, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except TimeoutError:
                failure = "slow"
                raise _TooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    failure = "large"
                    raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal responded
            if failure and not responded:
                return  # whatever the app makes of the cut-off body, the client gets the 413 or 408
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except (_TooLarge, _TooSlow):
            if responded:
                raise
        if failure == "large" and not responded:
            await _reply(send, 413, "too_large", _too_large(received, limit, streamed=True))
        elif failure == "slow" and not responded:
            await _reply(send, 408, "body_timeout", _too_slow(received, length))


def _is_upload(path: str) -> bool:
    return path.rstrip("/") in UPLOAD_PATHS


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


def _too_slow(received: int, length: int | None) -> str:
    expected = f" of {length:,}" if length is not None else ""
    return (
        f"the request body did not arrive in time ({received:,}{expected} bytes received); a body must "
        f"keep coming (at most {BODY_IDLE_S:g} s between pieces) and be complete within "
        f"{BODY_TOTAL_S:g} s ({UPLOAD_TOTAL_S:g} s for uploads)"
    )


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
