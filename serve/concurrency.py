"""Bounded concurrency for the expensive routes: a few requests run, a bounded queue waits.

A request to a gated route (``POST /v1/query``, ``/v1/chat/completions``, ``/v1/search``)
takes one of ``max_concurrent`` slots for as long as it runs, streamed body included. When
every slot is taken it waits in a first-come-first-served queue of at most ``max_queue``
requests. Beyond that, or after ``queue_timeout`` seconds of waiting, it gets a 503 JSON
error with ``Retry-After``: an overloaded server says so at once instead of letting requests
pile up until clients time out. Nothing is dropped silently: every request is either served
or answered with a 503.

The gate is a pure ASGI middleware, not a route dependency, so that a slot is held until the
last byte of a streamed answer has been sent (generation runs while the body streams).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybrid import Settings
from serve.errors import error_response

# Routes whose handlers embed, retrieve or generate; everything else (health, metrics, the web
# page, adapter listings) passes without waiting.
GATED_PATHS = frozenset({"/v1/query", "/v1/chat/completions", "/v1/search"})
# Bounds for the Retry-After estimate, in seconds.
RETRY_MIN_S, RETRY_MAX_S = 1, 120
# Weight of the newest request in the moving average of time per request.
EWMA_WEIGHT = 0.2


class Overloaded(Exception):
    """No slot free and no room to wait (``queue_full``) or waited too long (``queue_timeout``)."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


@dataclass
class GateStats:
    """What ``/metrics`` reports about the gate."""

    in_flight: int
    queued: int
    max_concurrent: int
    max_queue: int
    rejected: dict[str, int]


class Gate:
    """At most ``max_concurrent`` holders; at most ``max_queue`` waiters, served in order.

    Used from one event loop (the server's); not thread-safe, and needs no lock because
    every change happens between awaits.

    Args:
        max_concurrent: requests that run at once (each holds a thread while it computes).
        max_queue: requests that may wait for a slot; 0 rejects as soon as every slot is taken.
        queue_timeout: seconds a request may wait before it gets a 503.
    """

    def __init__(self, max_concurrent: int, max_queue: int, queue_timeout: float) -> None:
        if max_concurrent < 1 or max_queue < 0 or queue_timeout <= 0:
            raise ValueError(
                f"invalid gate: max_concurrent={max_concurrent} (>= 1), max_queue={max_queue} (>= 0), "
                f"queue_timeout={queue_timeout} (> 0)"
            )
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._seconds_per_request = 1.0  # moving average of slot hold time; a guess until measured
        self._rejected = {"queue_full": 0, "queue_timeout": 0}

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        return cls(settings.max_concurrent, settings.max_queue, settings.queue_timeout)

    def stats(self) -> GateStats:
        return GateStats(self._active, len(self._waiters), self.max_concurrent, self.max_queue, dict(self._rejected))

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, at the measured pace."""
        ahead = len(self._waiters) + 1
        estimate = math.ceil(ahead * self._seconds_per_request / self.max_concurrent)
        return max(RETRY_MIN_S, min(RETRY_MAX_S, estimate))

    async def acquire(self) -> float:
        """Take a slot, waiting in the queue if need be.

        Returns:
            the seconds spent waiting.

        Raises:
            Overloaded: the queue is full, or no slot came free within ``queue_timeout``.
        """
        if self._active < self.max_concurrent and not self._waiters:
            self._active += 1
            return 0.0
        if len(self._waiters) >= self.max_queue:
            raise self._reject(
                "queue_full",
                f"server busy: {self._active} requests running and {len(self._waiters)} queued "
                f"(limits {self.max_concurrent} and {self.max_queue})",
            )
        started = time.monotonic()
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await asyncio.wait({granted}, timeout=self.queue_timeout)
        except asyncio.CancelledError:  # the client went away while waiting
            self._leave(granted)
            raise
        if granted.done():  # release() handed its slot over: _active already counts us
            return time.monotonic() - started
        self._leave(granted)
        raise self._reject(
            "queue_timeout", f"no worker came free within {self.queue_timeout:g} s ({len(self._waiters)} still waiting)"
        )

    def _reject(self, reason: str, message: str) -> Overloaded:
        """Count a 503 and say when to retry. ``reason`` is also the error code, except that a
        full queue is ``overloaded``."""
        self._rejected[reason] += 1
        wait = self.retry_after()
        code = "overloaded" if reason == "queue_full" else reason
        return Overloaded(code, f"{message}; retry after {wait} s", wait)

    def release(self, held_seconds: float) -> None:
        """Give the slot back, straight to the longest waiter if there is one."""
        self._seconds_per_request += EWMA_WEIGHT * (held_seconds - self._seconds_per_request)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; _active stays the same
                return
        self._active -= 1

    def _leave(self, granted: asyncio.Future[None]) -> None:
        """Stop waiting; if the slot was handed over meanwhile, pass it on."""
        if granted.done() and not granted.cancelled():
            self.release(self._seconds_per_request)
            return
        granted.cancel()
        try:
            self._waiters.remove(granted)
        except ValueError:
            pass


class GateMiddleware:
    """Runs gated requests through the gate; the others (and all before start-up) straight through.

    A gated request's whole body is read before it may take a slot or a place in the queue, so
    a client that sends its body slowly, or never finishes it, holds neither
    (``serve.limits.BodyLimit``, outside this middleware, times the reading out). The keys are
    checked before that (``serve.auth.QueryKeyFirst``, further out still).

    Args:
        get_gate: the gate, or None while there is none (it is built from the settings when
            the app starts, after the middleware stack).
    """

    def __init__(self, app: ASGIApp, get_gate: Callable[[], Gate | None], paths: frozenset[str] = GATED_PATHS) -> None:
        self.app = app
        self.get_gate = get_gate
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.get_gate()
        if gate is None or scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client left before its body was complete
            return
        try:
            waited = await gate.acquire()
        except Overloaded as exc:
            response = error_response(503, exc.code, str(exc), {"Retry-After": str(exc.retry_after)})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["queue_wait_s"] = waited
        started = time.monotonic()
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            gate.release(time.monotonic() - started)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the real messages
    (a disconnect, which streaming responses listen for)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def install_gate(app: FastAPI) -> None:
    """Add the gate's middleware; the lifespan sets ``app.state.gate`` from the settings."""
    app.state.gate = None
    app.add_middleware(GateMiddleware, get_gate=lambda: app.state.gate)
