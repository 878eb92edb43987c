"""OpenAI's chat-completions wire format, as ``hybrid.engine`` reads it from an engine.

The endpoint's URL, the server-sent events of a streamed reply (``data: {...}`` chunks up to
``data: [DONE]``; llama-server's ``error: {...}`` line), and the message and ``Retry-After`` of
an engine's error, kept apart from the client so each stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

# What Retry-After says when the engine is unreachable and did not say itself.
RETRY_AFTER_S = 5
DONE: dict = {}  # the [DONE] event, told apart by identity


def chat_url(url: str) -> str:
    """``.../v1/chat/completions`` for an engine's base URL, with or without ``/v1``."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return f"{url}/chat/completions" if url.endswith("/v1") else f"{url}/v1/chat/completions"


def events(response: httpx.Response) -> Iterator[dict]:
    """The JSON of each server-sent ``data:`` event, until ``[DONE]``."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            if line.startswith("error:"):  # llama-server's form of a failure mid-stream
                yield {"error": json_or_text(line[6:].strip())}
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            yield DONE
            return
        if payload:
            data = json_or_text(payload)
            yield data if isinstance(data, dict) else {"error": payload}  # not an OpenAI chunk


def json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def error_message(error: Any) -> str:
    """The engine's error message from ``{"error": {"message": ...}}`` or its variants."""
    if isinstance(error, dict):
        inner = error.get("error", error)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner)[:500]
        return str(inner)[:500]
    return str(error).strip()[:500] or "no message"


def retry_seconds(value: str | None) -> int:
    try:
        return max(1, int(float(value))) if value else RETRY_AFTER_S
    except ValueError:
        return RETRY_AFTER_S


__all__ = ["DONE", "RETRY_AFTER_S", "chat_url", "error_message", "events", "json_or_text", "retry_seconds"]
