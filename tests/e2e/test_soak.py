"""A soak test (slow tier): `hybrid serve` on the real embedded models, in its own process, under
clients that misbehave the way real ones do, for ``SOAK_SECONDS`` (default 120).

At the same time: clients that drop streams at random points (before the first token, midway,
at the end), clients that send half a body without a key and hang on, clients that send half a
body with a key and stall, clients that send absurd numbers, and clients that ask normal
questions. Afterwards every normal request was answered, no other request got a 5xx, no slot is
held, ``/healthz`` is ok, and SIGTERM with a stream open stops the server within seconds. The
counts are printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import free_port, raw_post, wait_until_ready

pytestmark = pytest.mark.slow

KEY, ADMIN = "soak-query-key", "soak-admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DURATION_S = float(os.environ.get("SOAK_SECONDS", "120"))
QUESTIONS = ["Why did the engine lose power?", "How much did revenue grow?", "When must adverse events be reported?"]
STOP_WITHIN_S = 30  # SIGTERM to exit: the server's 10 s grace for open requests, plus its shutdown


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path):
    """`hybrid serve` with keys on a free port over the test corpus; yields (base URL, process)."""
    home = tmp_path_factory.mktemp("soak-home")
    env = {**os.environ, "HYBRID_HOME": str(home), "HYBRID_API_KEY": KEY, "HYBRID_ADMIN_KEY": ADMIN,
           "HYBRID_MAX_NEW_TOKENS": "48", "HYBRID_MAX_CONCURRENT": "2", "HYBRID_MAX_QUEUE": "32"}
    hybrid = str(Path(sys.executable).parent / "hybrid")
    subprocess.run([hybrid, "ingest", str(corpus_dir), "--json"], env=env, check=True, capture_output=True, timeout=600)
    port = free_port()
    log = open(home / "serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([hybrid, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, lambda: process.poll() is None, within_s=600, pause_s=0.5)
    except RuntimeError:
        process.kill()
        raise AssertionError((home / "serve.log").read_text()[-3000:]) from None
    yield base, process, home
    if process.poll() is None:
        process.kill()
    log.close()


class Tally:
    """Outcomes by client kind, and anything that should not have happened."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)


def _stream_body(rng: random.Random) -> tuple[str, bytes]:
    question = rng.choice(QUESTIONS)
    if rng.random() < 0.5:
        return "/v1/query", json.dumps({"question": question, "stream": True}).encode()
    chat = {"model": "base", "messages": [{"role": "user", "content": question}], "stream": True}
    return "/v1/chat/completions", json.dumps(chat).encode()


def _dropper(port: int, tally: Tally, until: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        path, body = _stream_body(rng)
        when = rng.choice(["before the first token", "midway", "at the end"])
        sock = raw_post(port, path, body, key=KEY)
        try:
            if when == "before the first token":
                time.sleep(rng.uniform(0, 0.5))
            else:
                data, events = b"", 0
                wanted = rng.randint(2, 12) if when == "midway" else None
                while (piece := sock.recv(4096)) and (wanted is None or events < wanted):
                    data += piece
                    events = data.count(b"data:")
                    if wanted is None and b"[DONE]" in data:
                        break
                if not data.startswith(b"HTTP/1.1 200") and not data.startswith(b"HTTP/1.1 503"):
                    tally.fail(f"dropped stream got {data[:80]!r}")
        except OSError as exc:
            tally.fail(f"dropped stream: {exc}")
        finally:
            sock.close()
        tally.add(f"streams dropped {when}")


def _slow_body(port: int, tally: Tally, until: float, seed: int, with_key: bool) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        path = rng.choice(["/v1/query", "/v1/search", "/v1/chat/completions"])
        sock = raw_post(port, path, b'{"question": "Why', length=200, key=KEY if with_key else None)
        try:
            reply = b""
            sock.settimeout(60)
            while piece := sock.recv(4096):
                reply += piece
                if b"}}" in reply:
                    break
            expected = b"HTTP/1.1 408" if with_key else b"HTTP/1.1 401"
            if not reply.startswith(expected):
                tally.fail(f"slow body ({'key' if with_key else 'no key'}) got {reply[:80]!r}")
        except OSError as exc:
            tally.fail(f"slow body: {exc}")
        finally:
            sock.close()
        tally.add("slow bodies with a key (408)" if with_key else "slow bodies without a key (401)")
        time.sleep(rng.uniform(0, 1))


ABSURD = [
    ("/v1/search", {"query": "revenue", "page_to": 2**63}),
    ("/v1/query", {"question": "Why did the engine lose power?", "page_from": 2**64, "stream": True}),
    ("/v1/chat/completions", {"model": "base", "messages": [{"role": "user", "content": "Why?"}], "page_to": 2**63}),
    ("/v1/search", {"query": "revenue", "k": "5"}),
    ("/v1/query", {"question": "Why?", "k": True}),
    ("/v1/query", {"question": "Why?", "stream": "yes"}),
    ("/v1/search", {"query": "revenue", "k": 10**30}),
    ("/v1/chat/completions", {"model": "base", "messages": [{"role": "user", "content": "Why?"}], "max_tokens": -1}),
]


def _absurd(base: str, tally: Tally, until: float, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(headers=AUTH, timeout=60) as client:
        while time.monotonic() < until:
            path, body = rng.choice(ABSURD)
            status = client.post(f"{base}{path}", json=body).status_code
            if status != 422:
                tally.fail(f"absurd {path} {body} got {status}")
            tally.add("absurd requests (422)")
            time.sleep(rng.uniform(0, 0.5))


def _normal(base: str, tally: Tally, until: float, seed: int, latencies: list[float]) -> None:
    rng = random.Random(seed)
    with httpx.Client(headers=AUTH, timeout=180) as client:
        while time.monotonic() < until:
            question = rng.choice(QUESTIONS)
            kind = rng.choice(["query", "search", "chat", "query stream"])
            started = time.monotonic()
            for _ in range(10):  # a deliberate 503 says when to come back
                if kind == "search":
                    response = client.post(f"{base}/v1/search", json={"query": question})
                elif kind == "query":
                    response = client.post(f"{base}/v1/query", json={"question": question})
                elif kind == "chat":
                    response = client.post(f"{base}/v1/chat/completions",
                                           json={"model": "base", "messages": [{"role": "user", "content": question}]})
                else:
                    with client.stream("POST", f"{base}/v1/query", json={"question": question, "stream": True}) as response:
                        text = response.read()
                    if response.status_code == 200 and b"[DONE]" not in text:
                        tally.fail(f"a normal stream ended without [DONE]: {text[-200:]!r}")
                if response.status_code != 503:
                    break
                tally.add("deliberate 503s")
                time.sleep(float(response.headers.get("Retry-After", "1")))
            if response.status_code != 200:
                tally.fail(f"normal {kind} got {response.status_code}: {response.text[:200]}")
            else:
                latencies.append(time.monotonic() - started)
            tally.add(f"normal {kind} answered" if response.status_code == 200 else f"normal {kind} failed")


def _in_flight(base: str) -> int:
    text = httpx.get(f"{base}/metrics", headers=AUTH, timeout=30).text
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("hybrid_requests_in_flight ")))


def test_the_server_survives_its_clients(server, capsys) -> None:
    base, process, home = server
    port = int(base.rsplit(":", 1)[1])
    started = time.monotonic()
    before = httpx.post(f"{base}/v1/query", json={"question": QUESTIONS[0]}, headers=AUTH, timeout=120)
    before_s = time.monotonic() - started
    assert before.status_code == 200
    tally, latencies = Tally(), []
    until = time.monotonic() + DURATION_S
    clients = [threading.Thread(target=_dropper, args=(port, tally, until, seed)) for seed in range(3)]
    clients += [threading.Thread(target=_slow_body, args=(port, tally, until, 10 + seed, seed % 2 == 0)) for seed in range(4)]
    clients += [threading.Thread(target=_absurd, args=(base, tally, until, 20))]
    clients += [threading.Thread(target=_normal, args=(base, tally, until, 30 + seed, latencies)) for seed in range(2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=DURATION_S + 300)
        assert not client.is_alive(), "a client never finished: the server stopped answering"

    # Nothing held afterwards: the slots come free, the server is healthy, a question is answered.
    deadline = time.monotonic() + 30
    while (held := _in_flight(base)) != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    health = httpx.get(f"{base}/healthz", timeout=30)
    started = time.monotonic()
    final = httpx.post(f"{base}/v1/query", json={"question": QUESTIONS[0]}, headers=AUTH, timeout=120)
    final_s = time.monotonic() - started

    # SIGTERM with a stream open: the server still stops within seconds.
    open_stream = raw_post(port, "/v1/query", json.dumps({"question": QUESTIONS[1], "stream": True}).encode(), key=KEY)
    open_stream.recv(4096)
    process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    try:
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        pass
    stop_s = time.monotonic() - stopped
    open_stream.close()

    latencies.sort()
    median = latencies[len(latencies) // 2] if latencies else float("nan")
    with capsys.disabled():
        print(f"\nsoak test, {DURATION_S:.0f} s: " + ", ".join(f"{n} {k}" for k, n in sorted(tally.counts.items())))
        print(f"soak test: normal requests p50 {median:.1f} s; afterwards in flight {held}, /healthz "
              f"{health.json().get('status')}, a query answered in {final_s:.1f} s (before the soak: {before_s:.1f} s); "
              f"SIGTERM to exit {stop_s:.1f} s")
    assert not tally.failures, tally.failures[:10]
    assert sum(n for k, n in tally.counts.items() if k.startswith("normal") and k.endswith("answered")) > 0
    assert held == 0
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert final.status_code == 200 and final.json()["route"] == "rag"
    assert process.poll() is not None, "the server did not stop on SIGTERM"
    assert "Traceback" not in (home / "serve.log").read_text()
