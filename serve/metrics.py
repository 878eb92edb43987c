"""``GET /metrics``: counters, latency histograms, tokens and queue depth as Prometheus text.

Written here rather than with ``prometheus_client``: four metric kinds and one text format
(https://prometheus.io/docs/instrumenting/exposition_formats/) do not justify a dependency
and its process-global registry. Each app has its own ``Registry`` (``app.state.metrics``), so
tests never see each other's counts.

What is measured, per request (by ``MetricsMiddleware``, around everything else):

- ``hybrid_http_requests_total{route,method,status}`` and
  ``hybrid_http_request_duration_seconds{route}``; ``route`` is the route's path template
  (``/v1/query``), or ``other`` for paths no route matches, so scanners cannot blow up the
  number of series.
- ``hybrid_generated_tokens_total{route}`` and ``hybrid_generation_tokens_per_second{route}``,
  read from the response where it says: ``usage.completion_tokens`` (OpenAI routes),
  ``timings.completion_tokens``, or, in a stream, the number of token events; a route can
  also say it exactly with ``request.state.completion_tokens = n``, which wins. The rate
  divides by ``timings.generate_ms`` when given, else by the request's duration.
- ``hybrid_queue_wait_seconds``, and at scrape time the gate's ``hybrid_queue_depth``,
  ``hybrid_requests_in_flight`` and ``hybrid_rejected_total{reason}``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.auth import require_query_key
from serve.concurrency import GATED_PATHS, GateStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
RATE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
# Only this much of a JSON response is kept to read its token count (an answer is a few KiB).
MAX_INSPECTED_BYTES = 1 << 20

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> Labels:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(labels)}")
        return tuple((name, str(labels[name])) for name in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, label_names)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (got {amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read when scraped, from ``read`` (label values -> value)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], dict[Labels, float]]) -> None:
        super().__init__(name, help_text)
        self._read = read

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(self._read().items())]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, label_names)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}  # bucket counts, [sum, count]

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts, totals = self._series.setdefault(key, ([0] * len(self.buckets), [0.0, 0.0]))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            totals[0] += value
            totals[1] += 1

    def count(self, **labels: str) -> int:
        series = self._series.get(self._key(labels))
        return int(series[1][1]) if series else 0

    def lines(self) -> list[str]:
        out = []
        with self._lock:
            items = sorted((k, (list(c), list(t))) for k, (c, t) in self._series.items())
        for key, (counts, (total, count)) in items:
            for bound, n in zip(self.buckets, counts):
                out.append(f"{self.name}_bucket{_labels(key + (('le', _number(bound)),))} {n}")
            out.append(f"{self.name}_bucket{_labels(key + (('le', '+Inf'),))} {int(count)}")
            out.append(f"{self.name}_sum{_labels(key)} {_number(total)}")
            out.append(f"{self.name}_count{_labels(key)} {int(count)}")
        return out


class Registry:
    """The metrics of one app."""

    def __init__(self, gate_stats: Callable[[], GateStats | None] = lambda: None) -> None:
        self.requests = Counter("hybrid_http_requests_total", "HTTP requests answered, by route, method and status.", ("route", "method", "status"))
        self.latency = Histogram("hybrid_http_request_duration_seconds", "Time from request to last byte sent, in seconds.", ("route",))
        self.tokens = Counter("hybrid_generated_tokens_total", "Tokens generated in answers.", ("route",))
        self.token_rate = Histogram("hybrid_generation_tokens_per_second", "Generation speed per answer, in tokens per second.", ("route",), RATE_BUCKETS)
        self.queue_wait = Histogram("hybrid_queue_wait_seconds", "Time a gated request waited for a worker slot, in seconds.")
        self._in_progress = 0
        self._lock = threading.Lock()
        self._metrics: list[_Metric] = [self.requests, self.latency, self.tokens, self.token_rate, self.queue_wait]
        self._metrics.append(Gauge("hybrid_http_requests_in_progress", "HTTP requests being answered now.", lambda: {(): self._in_progress}))
        def read(field: str) -> Callable[[], dict[Labels, float]]:
            return lambda: {(): getattr(stats, field)} if (stats := gate_stats()) is not None else {}

        self._metrics += [
            Gauge("hybrid_requests_in_flight", "Gated requests holding a worker slot.", read("in_flight")),
            Gauge("hybrid_queue_depth", "Gated requests waiting for a worker slot.", read("queued")),
            Gauge("hybrid_max_concurrent", "Worker slots (HYBRID_MAX_CONCURRENT).", read("max_concurrent")),
            Gauge("hybrid_max_queue", "Queue places (HYBRID_MAX_QUEUE).", read("max_queue")),
            Gauge(
                "hybrid_rejected_total",
                "Requests answered 503 by the gate, by reason (a counter kept by the gate).",
                lambda: {(("reason", r),): n for r, n in stats.rejected.items()} if (stats := gate_stats()) else {},
            ),
        ]

    def adjust_in_progress(self, delta: int) -> None:
        with self._lock:
            self._in_progress += delta

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines += metric.header() + metric.lines()
        return "\n".join(lines) + "\n"


def tokens_from_json(body: dict) -> tuple[int | None, float | None]:
    """(completion tokens, generation seconds) from a response body, where it says."""
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    timings = body.get("timings") if isinstance(body.get("timings"), dict) else {}
    tokens = usage.get("completion_tokens", timings.get("completion_tokens"))
    generate_ms = timings.get("generate_ms")
    seconds = generate_ms / 1000 if isinstance(generate_ms, int | float) and generate_ms > 0 else None
    return (int(tokens) if isinstance(tokens, int | float) else None), seconds


def tokens_from_stream(events: Iterable[str]) -> tuple[int | None, float | None]:
    """The same from server-sent events: token events counted, or the final usage/answer."""
    pieces, tokens, seconds = 0, None, None
    for data in events:
        try:
            event = json.loads(data)
        except ValueError:
            continue  # "[DONE]"
        if not isinstance(event, dict):
            continue
        if "token" in event:
            pieces += 1
        for choice in event.get("choices") or []:
            if isinstance(choice, dict) and (choice.get("delta") or {}).get("content"):
                pieces += 1
        final = event.get("answer") if isinstance(event.get("answer"), dict) else event
        found, found_seconds = tokens_from_json(final)
        tokens = found if found is not None else tokens
        seconds = found_seconds if found_seconds is not None else seconds
    if tokens is None and pieces:
        tokens = pieces
    return tokens, seconds


class MetricsMiddleware:
    """Counts every HTTP request; reads token counts from the gated routes' responses."""

    def __init__(self, app: ASGIApp, registry: Registry, inspect_paths: frozenset[str]) -> None:
        self.app = app
        self.registry = registry
        self.inspect_paths = inspect_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # what the client gets if the app raises before answering
        content_type = ""
        body = bytearray()
        inspect = scope["path"] in self.inspect_paths

        async def watching_send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers") or [])
                content_type = headers.get(b"content-type", b"").decode("latin-1")
            elif message["type"] == "http.response.body" and inspect and len(body) < MAX_INSPECTED_BYTES:
                body.extend(message.get("body", b""))
            await send(message)

        self.registry.adjust_in_progress(1)
        try:
            await self.app(scope, receive, watching_send)
        finally:
            self.registry.adjust_in_progress(-1)
            elapsed = time.monotonic() - started
            route = getattr(scope.get("route"), "path", None) or "other"
            self.registry.requests.inc(route=route, method=scope["method"], status=str(status))
            self.registry.latency.observe(elapsed, route=route)
            waited = (scope.get("state") or {}).get("queue_wait_s")
            if waited is not None:
                self.registry.queue_wait.observe(waited)
            if inspect and status == 200 and body:
                reported = (scope.get("state") or {}).get("completion_tokens")
                self._count_tokens(route, content_type, bytes(body), elapsed, reported)

    def _count_tokens(self, route: str, content_type: str, body: bytes, elapsed: float, reported: int | None) -> None:
        """Count the reply's tokens: ``reported`` by the route, else what the reply says."""
        text = body.decode("utf-8", errors="replace")
        if content_type.startswith("text/event-stream"):
            events = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
            tokens, seconds = tokens_from_stream(events)
        elif content_type.startswith("application/json"):
            try:
                parsed = json.loads(text)
            except ValueError:
                return
            tokens, seconds = tokens_from_json(parsed) if isinstance(parsed, dict) else (None, None)
        else:
            tokens, seconds = None, None
        tokens = reported if isinstance(reported, int) else tokens
        if not tokens:
            return
        self.registry.tokens.inc(tokens, route=route)
        self.registry.token_rate.observe(tokens / (seconds or elapsed), route=route)


def get_registry(request: Request) -> Registry:
    return request.app.state.metrics


router = APIRouter()


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require_query_key)])
def metrics(registry: Annotated[Registry, Depends(get_registry)]) -> PlainTextResponse:
    """Prometheus text format. Needs the query key when HYBRID_API_KEY is set, like /v1."""
    return PlainTextResponse(registry.render(), media_type=CONTENT_TYPE)


def install_metrics(app: FastAPI) -> None:
    """Count every request (add this after the gate, so the gate's 503s are counted too)."""
    app.state.metrics = Registry(lambda: app.state.gate.stats() if getattr(app.state, "gate", None) else None)
    app.add_middleware(MetricsMiddleware, registry=app.state.metrics, inspect_paths=GATED_PATHS)
    app.include_router(router)
