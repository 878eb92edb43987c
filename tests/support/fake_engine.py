"""A scripted OpenAI-compatible engine on a real port, for the failures a real one rarely shows.

It streams ``reply`` word by word as ``chat.completion.chunk`` events, like vLLM or llama.cpp's
server, and can instead answer with an error, stall, or drop the connection mid-reply
(``mode``). Each request's JSON body is kept in ``requests``. The real engine (llama.cpp's
``llama-server``) is tested in tests/e2e/test_engine.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeEngine:
    """``with FakeEngine(reply) as engine:`` serves at ``engine.url`` until the block ends.

    Modes: ``"ok"``; ``"error"`` (500 with an OpenAI error body); ``"busy"`` (503, Retry-After
    7); ``"slow"`` (no byte for ``delay`` seconds); ``"drop"`` (two pieces, then the connection
    closes).
    """

    def __init__(self, reply: str = "Hello from the engine.", mode: str = "ok", delay: float = 5.0) -> None:
        self.reply, self.mode, self.delay = reply, mode, delay
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeEngine:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._json(200, {"object": "list", "data": [{"id": "base", "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                engine.requests.append(body)
                if engine.mode == "error":
                    return self._json(500, {"error": {"message": "model 'x' failed to load", "type": "server_error"}})
                if engine.mode == "busy":
                    return self._json(503, {"error": {"message": "all slots are busy"}}, {"Retry-After": "7"})
                if engine.mode == "slow":
                    time.sleep(engine.delay)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = engine.reply.split(" ")
                for i, word in enumerate(words):
                    if engine.mode == "drop" and i == 2:
                        self.connection.shutdown(2)  # the engine died mid-reply
                        return None
                    self._event({"choices": [{"index": 0, "delta": {"content": word if i == 0 else f" {word}"}}]})
                usage = {"prompt_tokens": 42, "completion_tokens": len(words), "total_tokens": 42 + len(words)}
                self._event({"choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                return None

            def _event(self, data: dict) -> None:
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "base", **data}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            def _json(self, status: int, data: dict, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler
