"""The app on uvicorn, with the time limits a server facing real clients needs.

uvicorn times out an idle keep-alive connection (5 s after a response) but nothing else: a
client that opens a connection and sends no request, or only part of its headers, keeps it for
good; enough of them exhaust the process's file descriptors. ``HeaderDeadline`` closes a
connection whose next request's headers are not complete within ``HEADER_TIMEOUT_S``, as
nginx's ``client_header_timeout`` does. Bodies are timed in the app (``serve.limits``).

On SIGTERM uvicorn stops accepting connections and waits for the open ones, streams included;
after ``GRACEFUL_SHUTDOWN_S`` it cancels what is left, so a stop always completes (each
cancelled answer stops generating at its next token, ``serve.streams``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0  # from the connection, or the end of the previous response, to a request's last header
GRACEFUL_SHUTDOWN_S = 10  # seconds open requests get to finish after SIGTERM


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that does not complete a request's headers
    within ``HEADER_TIMEOUT_S``.

    The deadline starts when the connection opens and again when a response ends (the client
    may send another request on the connection); it passes once a new request has begun, that
    is once uvicorn has its headers. Sending bytes does not move it, so trickling a header a
    byte at a time does not keep a connection open.
    """

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._expire, self.cycle)

    def _expire(self, cycle: Any) -> None:
        # Still the cycle the deadline was set in, and it has no request running: no new
        # request's headers came in time.
        if self.cycle is cycle and (cycle is None or cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def server_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's config for ``app`` with the header deadline and a bounded graceful stop."""
    return uvicorn.Config(
        app, host=host, port=port, http=HeaderDeadline, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, **options
    )


def run(app: FastAPI, host: str, port: int, **options: Any) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (``options`` go to ``uvicorn.Config``)."""
    uvicorn.Server(server_config(app, host, port, **options)).run()
