"""One test against a real uvicorn server on a real port on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from serve import create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_answers_on_a_port(pipeline) -> None:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(pipeline.settings, pipeline=pipeline), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = httpx.post(f"{base}/v1/query", json={"question": "How much did revenue grow?"}, timeout=60).json()
        assert body["route"] == "rag"
        bad = httpx.post(f"{base}/v1/query", json={"question": ""}, timeout=10)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
