"""/metrics: valid Prometheus text, counts that go up, token counts read from responses."""

from __future__ import annotations

import json
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serve import create_app
from serve.metrics import MetricsMiddleware, Registry, tokens_from_json, tokens_from_stream

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = rf'{NAME}="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{{LABEL}(?:,{LABEL})*\}})? (-?[0-9.e+-]+|[+-]Inf|NaN)$")
HELP = re.compile(rf"^# HELP ({NAME}) .+$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def parse(text: str) -> dict[str, float]:
    """Every line checked against the exposition format; returns 'name{labels}' -> value."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP"):
            assert HELP.match(line), line
        elif line.startswith("# TYPE"):
            match = TYPE.match(line)
            assert match, line
            types[match.group(1)] = match.group(2)
        else:
            match = SAMPLE.match(line)
            assert match, f"not a Prometheus sample line: {line!r}"
            name = match.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert family in types, f"{name} has no # TYPE line before it"
            samples[name + (match.group(2) or "")] = float(match.group(3))
    return samples


def check_histograms(samples: dict[str, float]) -> None:
    """Buckets never decrease and the +Inf bucket equals the count."""
    series: dict[str, list[tuple[float, float]]] = {}
    for key, value in samples.items():
        match = re.match(r"^(\w+)_bucket\{(.*?),?le=\"([^\"]+)\"\}$", key)
        if match:
            bound = float("inf") if match.group(3) == "+Inf" else float(match.group(3))
            series.setdefault(f"{match.group(1)}|{match.group(2)}", []).append((bound, value))
    assert series, "no histogram series"
    for key, buckets in series.items():
        name, labels = key.split("|")
        counts = [v for _, v in sorted(buckets)]
        assert counts == sorted(counts), key
        count_key = f"{name}_count{{{labels}}}" if labels else f"{name}_count"
        assert counts[-1] == samples[count_key], key


def test_metrics_parse_and_count_requests(client) -> None:
    before = parse(client.get("/metrics").text)
    route = 'hybrid_http_requests_total{route="/v1/query",method="POST",status="200"}'
    assert route not in before
    for _ in range(2):
        assert client.post("/v1/query", json={"question": "How much did revenue grow?"}).status_code == 200
    assert client.post("/v1/query", json={"question": ""}).status_code == 422
    client.get("/no/such/page")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = parse(response.text)
    check_histograms(after)
    assert after[route] == 2
    assert after['hybrid_http_requests_total{route="/v1/query",method="POST",status="422"}'] == 1
    assert after['hybrid_http_requests_total{route="other",method="GET",status="404"}'] == 1
    assert after['hybrid_http_request_duration_seconds_count{route="/v1/query"}'] == 3
    assert after["hybrid_queue_wait_seconds_count"] == 3  # the 422 went through the gate too
    assert after["hybrid_queue_depth"] == 0 and after["hybrid_requests_in_flight"] == 0
    assert after["hybrid_max_concurrent"] == 2 and after['hybrid_rejected_total{reason="queue_full"}'] == 0


def test_metrics_need_the_query_key_when_keys_are_set(pipeline) -> None:
    settings = pipeline.settings.model_copy(update={"api_key": SecretStr("q-key")})
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer q-key"}).status_code == 200


def _recording_app(body: object, media_type: str) -> tuple[FastAPI, Registry]:
    inner = FastAPI()

    @inner.post("/v1/chat/completions")
    def reply():
        if media_type == "application/json":
            return JSONResponse(body)
        return StreamingResponse(iter(body), media_type=media_type)

    registry = Registry()
    inner.add_middleware(MetricsMiddleware, registry=registry, inspect_paths=frozenset({"/v1/chat/completions"}))
    return inner, registry


def test_tokens_are_read_from_json_usage() -> None:
    app, registry = _recording_app({"usage": {"completion_tokens": 42}, "timings": {"generate_ms": 2000}}, "application/json")
    with TestClient(app) as client:
        client.post("/v1/chat/completions")
    assert registry.tokens.value(route="/v1/chat/completions") == 42
    rendered = parse(registry.render())
    # 21 tokens/s lands in the (20, 50] bucket.
    assert rendered['hybrid_generation_tokens_per_second_bucket{route="/v1/chat/completions",le="20"}'] == 0
    assert rendered['hybrid_generation_tokens_per_second_bucket{route="/v1/chat/completions",le="50"}'] == 1


def test_tokens_are_counted_in_a_stream() -> None:
    events = [f"data: {json.dumps({'token': t})}\n\n" for t in ("The", " answer", " is")]
    events += [f"data: {json.dumps({'answer': {'answer': 'The answer is', 'timings': {'generate_ms': 300}}})}\n\n", "data: [DONE]\n\n"]
    app, registry = _recording_app(events, "text/event-stream")
    with TestClient(app) as client:
        assert "[DONE]" in client.post("/v1/chat/completions").text
    assert registry.tokens.value(route="/v1/chat/completions") == 3


def test_a_count_the_route_reports_wins() -> None:
    app = FastAPI()

    @app.post("/v1/query")
    def answer(request: Request):
        request.state.completion_tokens = 17  # what a route knows and its JSON does not say
        return {"answer": "x", "timings": {"generate_ms": 1000.0}}

    registry = Registry()
    app.add_middleware(MetricsMiddleware, registry=registry, inspect_paths=frozenset({"/v1/query"}))
    with TestClient(app) as client:
        client.post("/v1/query")
    assert registry.tokens.value(route="/v1/query") == 17
    assert registry.token_rate.count(route="/v1/query") == 1


def test_token_readers_prefer_reported_counts() -> None:
    assert tokens_from_json({"usage": {"completion_tokens": 7}}) == (7, None)
    assert tokens_from_json({"answer": "x", "timings": {"retrieve_ms": 3.0, "generate_ms": 0.0}}) == (None, None)
    openai = [json.dumps({"choices": [{"delta": {"content": w}}]}) for w in ("a", "b")]
    assert tokens_from_stream(openai + [json.dumps({"choices": [], "usage": {"completion_tokens": 9}}), "[DONE]"]) == (9, None)
    assert tokens_from_stream(openai + ["[DONE]"]) == (2, None)


def test_label_values_are_escaped() -> None:
    registry = Registry()
    registry.requests.inc(route='/odd"path\\x\n', method="GET", status="200")
    samples = parse(registry.render())
    assert 'hybrid_http_requests_total{route="/odd\\"path\\\\x\\n",method="GET",status="200"}' in samples
