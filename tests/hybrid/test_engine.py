"""Generation on an OpenAI-compatible engine: the request, the stream, and every way it fails."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from hybrid import AskOptions, Pipeline, load_settings
from hybrid.engine import EngineError, EngineGenerator, EngineTimeoutError, EngineUnavailableError, chat_url
from hybrid.generators import engine_model
from serve import create_app
from tests.support.fake_engine import FakeEngine

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why did the engine lose power?"}]
SUPPORTED = "The engine lost power because of fuel starvation [1]."


def client_for(engine: FakeEngine, **options) -> EngineGenerator:
    settings = load_settings(engine={"url": engine.url, "retries": 0, **options})
    return EngineGenerator(settings.engine, "house@v2")


@pytest.mark.parametrize("url", ["http://h:8080", "http://h:8080/", "http://h:8080/v1", "http://h:8080/v1/chat/completions"])
def test_the_chat_url_is_found_with_or_without_v1(url) -> None:
    assert chat_url(url) == "http://h:8080/v1/chat/completions"


def test_a_reply_is_the_joined_stream_with_the_engines_usage() -> None:
    with FakeEngine("The tank ran dry.") as engine:
        result = client_for(engine, params={"repeat_penalty": 1.1}).generate(MESSAGES, max_new_tokens=20)
    assert result.text == "The tank ran dry." and (result.prompt_tokens, result.completion_tokens) == (42, 4)
    sent = engine.requests[0]
    assert sent["model"] == "house@v2" and sent["messages"] == MESSAGES and sent["max_tokens"] == 20
    assert sent["stream"] is True and sent["temperature"] == 0.0 and sent["repeat_penalty"] == 1.1


def test_a_stream_yields_the_pieces_as_they_come() -> None:
    with FakeEngine("one two three") as engine:
        assert list(client_for(engine).stream(MESSAGES)) == ["one", " two", " three"]


def test_an_engine_that_cannot_be_reached_is_unavailable_with_retry_after() -> None:
    with FakeEngine() as engine:
        url = engine.url
    generator = EngineGenerator(load_settings(engine={"url": url, "retries": 1}).engine, "base")
    with pytest.raises(EngineUnavailableError, match="cannot be reached .* after 2 attempt") as caught:
        generator.generate(MESSAGES)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "engine_unavailable", 5)


def test_a_busy_engine_passes_on_its_retry_after() -> None:
    with FakeEngine(mode="busy") as engine, pytest.raises(EngineUnavailableError, match="all slots are busy") as caught:
        client_for(engine).generate(MESSAGES)
    assert caught.value.retry_after == 7


def test_an_engine_error_is_a_502_with_the_engines_message() -> None:
    with FakeEngine(mode="error") as engine, pytest.raises(EngineError, match="500 for model 'house@v2': model 'x' failed") as caught:
        client_for(engine).generate(MESSAGES)
    assert (caught.value.status, caught.value.code) == (502, "engine_error")


def test_a_silent_engine_times_out() -> None:
    with FakeEngine(mode="slow", delay=3) as engine, pytest.raises(EngineTimeoutError, match="sent nothing for 0.5 s") as caught:
        client_for(engine, timeout=0.5).generate(MESSAGES)
    assert (caught.value.status, caught.value.code) == (504, "engine_timeout")


def test_an_engine_that_dies_mid_reply_is_unavailable() -> None:
    with FakeEngine("one two three four", mode="drop") as engine:
        pieces = client_for(engine).stream(MESSAGES)
        assert next(pieces) == "one"
        with pytest.raises(EngineUnavailableError, match="closed the connection mid-reply"):
            list(pieces)


def test_a_cancelled_reply_stops_reading() -> None:
    cancel = threading.Event()
    with FakeEngine("one two three four") as engine:
        generator = client_for(engine)
        pieces = generator.stream(MESSAGES, cancel=cancel)
        assert next(pieces) == "one"
        cancel.set()
        assert list(pieces) == [] and generator.stalled_seconds() == 0.0


def test_adapters_map_to_the_engines_model_names(pipeline) -> None:
    from tune import AdapterVersion

    version = AdapterVersion(name="house", version=3, path=pipeline.settings.adapters_dir / "house" / "v3")
    settings = load_settings(engine={"url": "http://h:1", "models": {"house": "house-lora"}})
    assert engine_model(settings, version) == "house-lora"
    assert engine_model(load_settings(engine={"url": "http://h:1"}), version) == "house@v3"
    assert engine_model(settings, None) == settings.base_model
    assert engine_model(load_settings(engine={"url": "http://h:1", "model": "smol"}), None) == "smol"


@pytest.fixture
def on_engine(pipeline, fake_embedder):
    """A pipeline over the test corpus whose answers come from a FakeEngine."""

    def make(engine: FakeEngine, **options) -> Pipeline:
        settings = load_settings(adapter="none", min_score=0.2, engine={"url": engine.url, "retries": 0, **options})
        return Pipeline(settings, embedder=fake_embedder)

    return make


def test_answers_through_the_engine_are_checked_and_cited(on_engine) -> None:
    with FakeEngine(f"The engine lost power at 4,500 feet [1]. {SUPPORTED}") as engine:
        answer = on_engine(engine).ask("Why did the engine lose power?", AskOptions(max_new_tokens=30))
    assert answer.route == "rag" and answer.grounded and "4,500" not in answer.answer
    assert answer.citations and answer.citations[0].source.endswith("engine report.pdf")
    assert "fuel starvation" in engine.requests[0]["messages"][-1]["content"]  # the evidence prompt
    assert answer.prompt_tokens == 42


def test_the_server_says_503_with_retry_after_when_the_engine_is_down(on_engine) -> None:
    with FakeEngine() as engine:
        pipe = on_engine(engine)
    with TestClient(create_app(pipe.settings, pipeline=pipe), raise_server_exceptions=False) as client:
        started = time.monotonic()
        response = client.post("/v1/query", json={"question": "Why did the engine lose power?"})
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "engine_unavailable" and time.monotonic() - started < 10
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["engine"] == pipe.settings.engine.url  # the server is fine


@pytest.mark.parametrize(("mode", "status", "code"), [("error", 502, "engine_error"), ("slow", 504, "engine_timeout")])
def test_the_server_reports_an_engine_failure_as_json(on_engine, mode, status, code) -> None:
    with FakeEngine(mode=mode, delay=3) as engine:
        pipe = on_engine(engine, timeout=0.5)
        with TestClient(create_app(pipe.settings, pipeline=pipe), raise_server_exceptions=False) as client:
            response = client.post("/v1/query", json={"question": "Why did the engine lose power?"})
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_an_engine_dying_mid_stream_ends_the_stream_with_an_error_event(on_engine) -> None:
    with FakeEngine(f"{SUPPORTED} It was fuel.", mode="drop") as engine:
        pipe = on_engine(engine)
        with TestClient(create_app(pipe.settings, pipeline=pipe), raise_server_exceptions=False) as client:
            with client.stream("POST", "/v1/query", json={"question": "Why did the engine lose power?", "stream": True}) as response:
                body = response.read().decode()
    events = [json.loads(c[6:]) for c in body.split("\n\n") if c.startswith("data: {")]
    assert response.status_code == 200 and events[0] == {"token": "The"}
    assert events[-1]["error"]["code"] == "engine_unavailable" and "[DONE]" not in body


def test_hybrid_ask_engine_answers_through_it(pipeline, monkeypatch) -> None:
    from click.testing import CliRunner

    from hybrid.cli import main

    monkeypatch.setenv("HYBRID_MIN_SCORE", "0.2")
    with FakeEngine(SUPPORTED) as engine:
        result = CliRunner().invoke(main, ["ask", "Why did the engine lose power?", "--engine", engine.url, "--json"])
    answer = json.loads(result.stdout)
    assert result.exit_code == 0 and answer["route"] == "rag" and answer["grounded"] and "fuel starvation" in answer["answer"]
    assert len(engine.requests) == 1
