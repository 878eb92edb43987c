"""Generation on a serving engine: any server with OpenAI's ``/v1/chat/completions``.

vLLM and TGI on a GPU, llama.cpp's ``llama-server`` on CPUs and Ollama on a laptop all serve the
OpenAI chat-completions API. With ``engine.url`` set, hybrid sends them the messages it would
give its in-process generator (the evidence prompt, or the rewrite prompt of the style route)
and reads the reply back as a stream. Everything around the generator stays in hybrid: routing,
retrieval, evidence, the grounding check, citations and refusal see the same text either way.

``EngineGenerator`` has the in-process ``tune.Generator``'s interface (``generate``, ``stream``,
``count_tokens``, ``stalled_seconds``, ``close``), so the answering steps do not know which one
they hold. Unlike it, it holds no lock: an engine that batches (``llama-server --parallel``,
vLLM) makes several replies at once, and the server's gate (``max_concurrent``) decides how
many requests are sent to it.

Failures are errors with a public code, never a traceback: an engine that cannot be reached, or
drops the connection mid-reply, is ``engine_unavailable`` (503 with ``Retry-After``); one that
goes silent for ``engine.timeout`` seconds is ``engine_timeout`` (504); one that answers with
an error is ``engine_error`` (502, with the engine's own message). Connection failures before
the reply starts are retried ``engine.retries`` times.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx

from hybrid.errors import HybridError, NotReadyError
from hybrid.wire import DONE, RETRY_AFTER_S, chat_url, error_message, events, json_or_text, retry_seconds

if TYPE_CHECKING:
    from hybrid.config import EngineSettings
    from tune import GenerationResult

logger = logging.getLogger("hybrid")

# Characters per token of English text for BPE tokenizers (Llama, SmolLM2, GPT): the engine's
# tokenizer is not here, so lengths such as the house frame's are estimated from characters.
CHARS_PER_TOKEN = 4
# Seconds between the retries of a connection that failed before the reply started.
RETRY_BACKOFF_S = 0.5


class Generator(Protocol):
    """What the answering steps use of a generator: ``tune.Generator`` (in this process) or
    ``EngineGenerator`` (on an engine)."""

    def generate(
        self, messages: Sequence[dict], *, max_new_tokens: int = ..., temperature: float = ...,
        repetition_penalty: float = ..., cancel: threading.Event | None = ...,
    ) -> GenerationResult: ...

    def stream(
        self, messages: Sequence[dict], *, max_new_tokens: int = ..., temperature: float = ...,
        repetition_penalty: float = ..., cancel: threading.Event | None = ...,
    ) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def stalled_seconds(self) -> float: ...

    def close(self) -> None: ...


class EngineUnavailableError(NotReadyError):
    """The engine cannot be reached, is overloaded, or dropped the connection mid-reply."""

    code = "engine_unavailable"  # status 503, as any NotReadyError
    retry_after = RETRY_AFTER_S


class EngineTimeoutError(HybridError):
    """The engine sent nothing for ``engine.timeout`` seconds."""

    code = "engine_timeout"
    status = 504


class EngineError(HybridError):
    """The engine answered with an error (an unknown model, a prompt too long for it ...)."""

    code = "engine_error"
    status = 502


@dataclass
class _Reply:
    """What one streamed reply brought: its usage when the engine reports it, its timing."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_s: float = 0.0


class EngineGenerator:
    """Replies from the engine at ``settings.url``, as the model the engine calls ``model``.

    Thread-safe; holds one connection pool.
    """

    def __init__(self, settings: EngineSettings, model: str) -> None:
        self.settings = settings
        self.model = model
        self.url = chat_url(settings.url or "")
        headers = {"Authorization": f"Bearer {settings.key.get_secret_value()}"} if settings.key else {}
        timeout = httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0))
        self._client = httpx.Client(headers=headers, timeout=timeout)
        self._progress: dict[int, float] = {}  # reply id -> when it last received something
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """An estimate (``CHARS_PER_TOKEN``): the engine's tokenizer is not in this process."""
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def stalled_seconds(self) -> float:
        """The longest time a reply in progress has waited for the engine's next piece."""
        with self._lock:
            last = min(self._progress.values(), default=None)
        return 0.0 if last is None else max(0.0, time.monotonic() - last)

    def close(self) -> None:
        self._client.close()

    def generate(
        self,
        messages: Sequence[dict],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        repetition_penalty: float = 1.1,  # noqa: ARG002 - the engine's own (see engine.params)
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """The whole reply, read as a stream so that ``cancel`` and the stall watch work."""
        from tune import GenerationResult

        started = time.perf_counter()
        reply = _Reply()
        text = "".join(self._pieces(messages, max_new_tokens, temperature, cancel, reply)).strip()
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = self.count_tokens(" ".join(str(m.get("content", "")) for m in messages))
        completion = reply.completion_tokens if reply.completion_tokens is not None else self.count_tokens(text)
        return GenerationResult(text, prompt, completion, time.perf_counter() - started, reply.first_token_s)

    def stream(
        self,
        messages: Sequence[dict],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        repetition_penalty: float = 1.1,  # noqa: ARG002 - the engine's own (see engine.params)
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """The reply's pieces as the engine sends them; closing the iterator closes the connection,
        which stops the engine's work on it."""
        yield from self._pieces(messages, max_new_tokens, temperature, cancel, _Reply())

    def probe(self) -> None:
        """Log whether the engine answers and serves ``model``; a server may start before its engine."""
        try:
            served = self.models()
        except HybridError as exc:
            logger.warning("%s; answers fail with 503 until it does", exc)
            return
        if served and self.model not in served:
            logger.warning("the engine at %s serves %s, not %r; it may answer 404 (set engine.model or engine.models)",
                           self.url, ", ".join(served), self.model)
        else:
            logger.info("generating on the engine at %s as %r", self.url, self.model)

    def models(self) -> list[str]:
        """The model names the engine serves (``GET /v1/models``).

        Raises:
            EngineUnavailableError, EngineTimeoutError, EngineError: as for a reply.
        """
        response = self._send(self._client.build_request("GET", self.url.removesuffix("/chat/completions") + "/models"))
        return [str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)]

    def _pieces(
        self,
        messages: Sequence[dict],
        max_new_tokens: int,
        temperature: float,
        cancel: threading.Event | None,
        reply: _Reply,
    ) -> Iterator[str]:
        body = {
            **self.settings.params,
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        key = id(reply)
        response = self._send(self._client.build_request("POST", self.url, json=body), stream=True)
        self._touch(key)
        finished = False  # [DONE] or a finish_reason came: the engine ended the reply itself
        try:
            for data in events(response):
                if cancel is not None and cancel.is_set():
                    return
                self._touch(key)
                if data is DONE:
                    finished = True
                    break
                if "error" in data:
                    raise EngineError(f"the engine failed mid-reply: {error_message(data['error'])}")
                usage = data.get("usage") or {}
                reply.prompt_tokens = usage.get("prompt_tokens", reply.prompt_tokens)
                reply.completion_tokens = usage.get("completion_tokens", reply.completion_tokens)
                for choice in data.get("choices") or ():
                    finished = finished or choice.get("finish_reason") is not None
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        reply.first_token_s = reply.first_token_s or time.perf_counter() - started
                        yield piece
            if not finished:  # the connection ended, but the reply did not
                raise self._dropped("the stream ended before the reply did")
        except httpx.TimeoutException as exc:
            raise self._timeout() from exc
        except httpx.TransportError as exc:
            raise self._dropped(type(exc).__name__) from exc
        finally:
            response.close()  # also what tells the engine to stop, when the reader went away
            with self._lock:
                self._progress.pop(key, None)

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """The engine's response to ``request`` once it accepted it, or the error it amounts to;
        a connection that fails before the engine answers is retried ``engine.retries`` times."""
        for attempt in range(self.settings.retries + 1):
            try:
                response = self._client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                raise self._timeout() from exc
            except httpx.TransportError as exc:
                if attempt == self.settings.retries:
                    raise self._unreachable(exc) from exc
                logger.warning("engine at %s: %s; retrying", self.url, type(exc).__name__)
                time.sleep(RETRY_BACKOFF_S * (attempt + 1))
                continue
            if response.status_code >= 400:
                try:
                    text = response.read().decode("utf-8", "replace")
                finally:
                    response.close()
                raise self._refused(response.status_code, text, response.headers)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def _touch(self, key: int) -> None:
        with self._lock:
            self._progress[key] = time.monotonic()

    def _unreachable(self, exc: Exception) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"the engine at {self.url} cannot be reached ({type(exc).__name__}) after "
            f"{self.settings.retries + 1} attempt(s); is it running?"
        )

    def _dropped(self, why: str) -> EngineUnavailableError:
        return EngineUnavailableError(f"the engine at {self.url} closed the connection mid-reply ({why}); is it still running?")

    def _timeout(self) -> EngineTimeoutError:
        return EngineTimeoutError(
            f"the engine at {self.url} sent nothing for {self.settings.timeout:g} s "
            "(engine.timeout); it may be overloaded"
        )

    def _refused(self, status: int, text: str, headers: httpx.Headers) -> HybridError:
        message = error_message(json_or_text(text))
        if status in (429, 503):
            error: HybridError = EngineUnavailableError(f"the engine at {self.url} is busy ({status}): {message}")
            error.retry_after = retry_seconds(headers.get("retry-after"))
            return error
        return EngineError(f"the engine at {self.url} answered {status} for model {self.model!r}: {message}")


__all__ = ["EngineError", "EngineGenerator", "EngineTimeoutError", "EngineUnavailableError", "Generator", "chat_url"]
