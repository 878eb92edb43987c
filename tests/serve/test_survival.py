"""The server survives its clients: dropped streams, abandoned requests, slow bodies and headers,
absurd numbers. Each against a real uvicorn on 127.0.0.1, with raw sockets where a well-behaved
HTTP client cannot misbehave enough."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from pydantic import SecretStr

from serve import create_app, limits, server
from tests.support.live_server import live_server, raw_post

QUESTION = "How much did revenue grow?"
KEY = "survival-query-key"
LONG = 400  # tokens asked for, so that a reply is still being made when its client leaves


class SlowModel:
    """Makes every forward pass of the generator's model take ``delay`` seconds (a reply of
    ``LONG`` tokens then takes seconds), and counts them."""

    def __init__(self, generator, delay: float = 0.02) -> None:
        self.calls = 0
        self.delay = delay
        self.release = threading.Event()
        self.release.set()  # clear() to make the next forward pass hang until set() again
        self.handle = generator.model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.calls += 1
        time.sleep(self.delay)
        self.release.wait()


@pytest.fixture
def slow(pipeline) -> Iterator[SlowModel]:
    pipeline.settings = pipeline.settings.model_copy(update={"max_new_tokens": LONG})
    pipeline.load("none")
    generator = pipeline.generator(None)
    model = SlowModel(generator)
    yield model
    model.release.set()
    model.handle.remove()


def _settings(pipeline, **update):
    return pipeline.settings.model_copy(update=update)


@contextmanager
def _server(pipeline, **update) -> Iterator[tuple[str, int]]:
    with live_server(create_app(_settings(pipeline, **update), pipeline=pipeline)) as base:
        yield base, int(base.rsplit(":", 1)[1])


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while piece := sock.recv(65536):
        data += piece
    return data


def _in_flight(base: str, headers: dict | None = None) -> int:
    text = httpx.get(f"{base}/metrics", headers=headers, timeout=10).text
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("hybrid_requests_in_flight ")))


def _wait_free(pipeline, within_s: float = 20) -> None:
    """Until no reply is being made (the model is free)."""
    generator = pipeline.generator(None)
    deadline = time.monotonic() + within_s
    while generator._lock.locked():
        assert time.monotonic() < deadline, "the generator is still held"
        time.sleep(0.02)


def _answered(base: str, headers: dict | None = None) -> dict:
    response = httpx.post(f"{base}/v1/query", json={"question": QUESTION}, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


# -- 1. a dropped stream, an abandoned request ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/query", {"question": QUESTION, "stream": True}),
        ("/v1/chat/completions", {"model": "base", "messages": [{"role": "user", "content": QUESTION}], "stream": True}),
    ],
)
def test_a_stream_dropped_after_its_first_event_frees_the_generator(pipeline, slow, path, body) -> None:
    with _server(pipeline) as (base, port):
        sock = raw_post(port, path, json.dumps(body).encode())
        assert b"data:" in _read_until(sock, b"data:")
        sock.close()
        _wait_free(pipeline)
        assert slow.calls < LONG  # generation stopped when the client left, not at the end
        slow.delay = 0
        assert _answered(base)["route"] == "rag"
        assert _in_flight(base) == 0


def test_dropped_streams_do_not_wedge_a_single_slot(pipeline, slow) -> None:
    # The second repro: with one slot, the second dropped chat stream wedged the server.
    chat = {"model": "base", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with _server(pipeline, max_concurrent=1) as (base, port):
        for path, body in [("/v1/chat/completions", chat)] * 2 + [("/v1/query", {"question": QUESTION, "stream": True})]:
            sock = raw_post(port, path, json.dumps(body).encode())
            _read_until(sock, b"data:")
            sock.close()
        slow.delay = 0
        assert _answered(base)["route"] == "rag"
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=chat, timeout=60) as response:
            assert b"[DONE]" in response.read()
        _wait_free(pipeline)
        assert _in_flight(base) == 0


@pytest.mark.parametrize("path", ["/v1/query", "/v1/chat/completions"])
def test_a_plain_request_abandoned_mid_generation_stops_it(pipeline, slow, path) -> None:
    body = {"question": QUESTION} if path == "/v1/query" else {"model": "base", "messages": [{"role": "user", "content": QUESTION}]}
    with _server(pipeline) as (base, port):
        sock = raw_post(port, path, json.dumps(body).encode())
        deadline = time.monotonic() + 30
        while slow.calls < 5:  # generating
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sock.close()
        _wait_free(pipeline)
        assert slow.calls < LONG
        slow.delay = 0
        assert _answered(base)["route"] == "rag"
        assert _in_flight(base) == 0


def test_a_stream_dropped_before_the_first_token_frees_its_place(pipeline, slow) -> None:
    # The client leaves while its request waits for the model (another reply holds it).
    with _server(pipeline, max_concurrent=2) as (base, port):
        first = raw_post(port, "/v1/query", json.dumps({"question": QUESTION, "stream": True}).encode())
        _read_until(first, b"data:")
        second = raw_post(port, "/v1/query", json.dumps({"question": QUESTION, "stream": True}).encode())
        time.sleep(0.3)
        second.close()
        first.close()
        _wait_free(pipeline)
        slow.delay = 0
        assert _answered(base)["route"] == "rag"
        assert _in_flight(base) == 0


# -- 2. slow bodies and headers hold nothing --------------------------------------------------


def test_slow_bodies_without_a_key_never_take_a_slot(pipeline, slow) -> None:
    slow.delay = 0
    settings = {"api_key": SecretStr(KEY), "max_concurrent": 1, "max_queue": 1, "queue_timeout": 5}
    with _server(pipeline, **settings) as (base, port):
        hanging = [raw_post(port, "/v1/query", b'{"query":', length=100) for _ in range(4)]
        for sock in hanging:  # refused on the headers alone, without waiting for the body
            reply = _read_until(sock, b"}")
            assert reply.startswith(b"HTTP/1.1 401") and b'"unauthorized"' in reply
        auth = {"Authorization": f"Bearer {KEY}"}
        assert _answered(base, auth)["route"] == "rag"
        assert _in_flight(base, auth) == 0
        for sock in hanging:
            sock.close()


def test_a_slow_body_with_a_key_gets_408_and_holds_no_slot(pipeline, slow, monkeypatch) -> None:
    slow.delay = 0
    monkeypatch.setattr(limits, "BODY_IDLE_S", 0.5)
    monkeypatch.setattr(limits, "BODY_TOTAL_S", 2.0)
    settings = {"api_key": SecretStr(KEY), "max_concurrent": 1, "max_queue": 0}
    auth = {"Authorization": f"Bearer {KEY}"}
    with _server(pipeline, **settings) as (base, port):
        stalled = [raw_post(port, "/v1/query", b'{"question":', length=100, key=KEY) for _ in range(3)]
        # With one slot and no queue, any slot taken by a stalled body would make this a 503.
        assert _answered(base, auth)["route"] == "rag"
        for sock in stalled:
            reply = _read_all(sock)  # the server answers and closes the connection
            assert reply.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in reply
        # Trickling the body a byte at a time does not move the deadline.
        trickle = raw_post(port, "/v1/search", b"{", length=100, key=KEY)
        reply = b""
        for byte in b'"query": "revenue growth" ' * 3:
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        reply = _read_all(trickle)
        assert reply.startswith(b"HTTP/1.1 408")
        assert _in_flight(base, auth) == 0


def test_a_connection_without_complete_headers_is_closed(pipeline, monkeypatch) -> None:
    monkeypatch.setattr(server, "HEADER_TIMEOUT_S", 1.0)
    with _server(pipeline) as (base, port):
        silent = socket.create_connection(("127.0.0.1", port), timeout=30)
        partial = socket.create_connection(("127.0.0.1", port), timeout=30)
        partial.sendall(b"POST /v1/query HTTP/1.1\r\nHost: test\r\n")
        for _ in range(5):  # a header a byte at a time does not keep it open
            try:
                partial.sendall(b"X")
            except OSError:
                break
            time.sleep(0.3)
        assert _read_all(silent) == b"" and _read_all(partial) == b""  # closed by the server
        # A keep-alive connection serves its requests as usual.
        with httpx.Client(timeout=30) as client:
            assert client.get(f"{base}/healthz").status_code == 200
            assert client.get(f"{base}/healthz").status_code == 200


# -- 3. health that tells the truth ----------------------------------------------------------


def test_healthz_says_degraded_while_a_reply_makes_no_progress(pipeline, slow) -> None:
    slow.delay = 0
    with _server(pipeline, stall_timeout=0.5) as (base, port):
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        slow.release.clear()  # the model hangs in its next forward pass
        sock = raw_post(port, "/v1/query", json.dumps({"question": QUESTION}).encode())
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{base}/healthz", timeout=10)).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and "no progress" in health.json()["reason"]
        slow.release.set()
        assert _read_until(sock, b"}").startswith(b"HTTP/1.1 200")
        sock.close()
        _wait_free(pipeline)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"


# -- 4. bounds and types at the edge ---------------------------------------------------------

CHAT = {"model": "base", "messages": [{"role": "user", "content": QUESTION}]}
ABSURD = [
    ("/v1/search", {"query": QUESTION, "page_to": 2**63}),
    ("/v1/search", {"query": QUESTION, "page_from": 2**64}),
    ("/v1/search", {"query": QUESTION, "page_to": 1_000_001}),
    ("/v1/query", {"question": QUESTION, "page_from": 2**63}),
    ("/v1/query", {"question": QUESTION, "page_to": 2**63, "stream": True}),
    ("/v1/chat/completions", {**CHAT, "page_to": 2**63}),
    ("/v1/chat/completions", {**CHAT, "page_from": 2**70, "stream": True}),
    ("/v1/search", {"query": QUESTION, "k": "5"}),
    ("/v1/search", {"query": QUESTION, "k": True}),
    ("/v1/query", {"question": QUESTION, "k": 5.0}),
    ("/v1/query", {"question": QUESTION, "page_from": True}),
    ("/v1/query", {"question": QUESTION, "stream": "yes"}),
    ("/v1/query", {"question": QUESTION, "strict": 1}),
    ("/v1/chat/completions", {**CHAT, "stream": "yes"}),
    ("/v1/chat/completions", {**CHAT, "max_tokens": "100"}),
    ("/v1/chat/completions", {**CHAT, "no_such_field": 1}),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": QUESTION, "colour": "red"}]}),
    ("/v1/query", {"question": QUESTION, "no_such_field": 1}),
]


def test_absurd_numbers_wrong_types_and_unknown_fields_are_422(pipeline) -> None:
    with _server(pipeline) as (base, _):
        for path, body in ABSURD:
            response = httpx.post(f"{base}{path}", json=body, timeout=30)
            assert response.status_code == 422, (path, body, response.text)
            assert response.json()["error"]["code"] == "invalid_request"
        # OpenAI's own fields that the server does not use are accepted (and ignored).
        ignored = {**CHAT, "seed": 7, "top_p": 0.5, "user": "u1", "stop": ["\n"], "presence_penalty": 0,
                   "messages": [{"role": "user", "content": QUESTION, "name": "ana"}]}
        assert httpx.post(f"{base}/v1/chat/completions", json=ignored, timeout=60).status_code == 200
        # The largest page a filter may name works, and finds nothing past the documents' end.
        found = httpx.post(f"{base}/v1/search", json={"query": QUESTION, "page_from": 1_000_000}, timeout=30)
        assert found.status_code == 200 and found.json()["hits"] == []


def test_the_python_api_bounds_pages_too(pipeline) -> None:
    from hybrid import BadRequestError

    for pages in [(2**63, None), (None, 2**64), (1, 10**7)]:
        with pytest.raises(BadRequestError, match="pages are numbered from 1 to at most 1,000,000"):
            pipeline.search(QUESTION, pages=pages)
