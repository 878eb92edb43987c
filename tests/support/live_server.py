"""A real uvicorn server on a free port of 127.0.0.1, in a thread, for tests that need sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from serve import server_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app: FastAPI, ready_within_s: float = 60) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields the base URL once /healthz answers 200."""
    port = free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, thread.is_alive, ready_within_s)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(base: str, alive: Callable[[], bool], within_s: float, pause_s: float = 0.05) -> None:
    """Until ``GET /healthz`` answers 200; RuntimeError when the server dies or takes too long."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not alive():
            raise RuntimeError(f"the test server on {base} did not become ready")
        time.sleep(pause_s)


def raw_post(port: int, path: str, body: bytes, *, length: int | None = None, key: str | None = None) -> socket.socket:
    """A connection to 127.0.0.1 that has sent the headers of a JSON POST and ``body``: all of
    it, or the start of a longer ``length`` (a client that never finishes its body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    headers = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json",
               f"Content-Length: {len(body) if length is None else length}"]
    if key:
        headers.append(f"Authorization: Bearer {key}")
    sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
    return sock


def wait_for_job(client, job: str, timeout: float = 60) -> dict:
    """``GET /v1/jobs/{job}`` until the job is done or failed; ``client`` is a TestClient or an
    ``httpx.Client`` with the server's base URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job} still {body['status']} after {timeout} s")
