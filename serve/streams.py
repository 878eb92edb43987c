"""Answers that stop when their client goes away: a stream dropped midway, a request abandoned.

A generation that nobody waits for any more only costs the next client its turn. Each answer
gets a ``threading.Event`` that the pipeline's generation checks between tokens
(``Pipeline.ask``, ``Pipeline.ask_stream``); this module sets it:

- ``EventStream``, a ``StreamingResponse`` that sets it when the client disconnects and when
  the response ends for any reason (finished, failed, cancelled at shutdown).
- ``run_watched`` runs a blocking answer (or a stream's start) in the thread pool while it
  listens for the client's disconnect, and sets it when one comes.

The generator never depends on the reader to let go of the model (``tune.Generator.stream``),
so these only make the end prompt; they are not what keeps the server alive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

# Proxies (nginx) buffer responses unless told not to; a buffered stream arrives all at once.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
T = TypeVar("T")


class EventStream(StreamingResponse):
    """Server-sent events from ``events``; ``cancel`` is set as soon as the client is gone.

    Args:
        events: the ``data: ...`` lines, made in the thread pool.
        cancel: the generation's cancel event.
    """

    def __init__(self, events: Iterator[str], cancel: threading.Event) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self.cancel = cancel

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        self.cancel.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()  # done, failed, disconnected or cancelled: generate no further


async def run_watched(
    request: Request, cancel: threading.Event, work: Callable[..., T], /, *args: Any, **kwargs: Any
) -> T:
    """``work(*args, **kwargs)`` in the thread pool, with ``cancel`` set if the client
    disconnects before it returns (its result then goes nowhere)."""
    watcher = asyncio.ensure_future(_set_on_disconnect(request.receive, cancel))
    try:
        return await run_in_threadpool(work, *args, **kwargs)
    finally:
        watcher.cancel()


async def _set_on_disconnect(receive: Receive, cancel: threading.Event) -> None:
    # Called once the body has been read: the next message the server sends is the disconnect.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return
