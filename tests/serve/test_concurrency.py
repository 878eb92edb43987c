"""The gate: a few requests run, a bounded queue waits in order, the rest get 503 + Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serve import create_app
from serve.concurrency import Gate, Overloaded
from tests.support.live_server import live_server


def test_gate_serves_waiters_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        gate = Gate(max_concurrent=1, max_queue=3, queue_timeout=5)
        order: list[str] = []
        await gate.acquire()

        async def waiter(name: str) -> None:
            await gate.acquire()
            order.append(name)
            gate.release(0.01)

        tasks = []
        for name in "abc":
            tasks.append(asyncio.create_task(waiter(name)))
            await asyncio.sleep(0)  # each joins the queue before the next
        assert gate.stats().queued == 3 and gate.stats().in_flight == 1
        gate.release(0.01)
        await asyncio.gather(*tasks)
        assert gate.stats().in_flight == 0 and gate.stats().queued == 0
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_gate_rejects_beyond_the_queue_and_after_the_timeout() -> None:
    async def scenario() -> None:
        gate = Gate(max_concurrent=1, max_queue=1, queue_timeout=0.2)
        await gate.acquire()
        waiting = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as full:
            await gate.acquire()
        assert full.value.code == "overloaded" and full.value.retry_after >= 1
        with pytest.raises(Overloaded) as late:
            await waiting
        assert late.value.code == "queue_timeout"
        assert gate.stats().rejected == {"queue_full": 1, "queue_timeout": 1}
        # The timed-out waiter left the queue: the slot goes back to zero holders, not to a ghost.
        gate.release(0.01)
        assert gate.stats().in_flight == 0 and gate.stats().queued == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def scenario() -> None:
        gate = Gate(max_concurrent=1, max_queue=2, queue_timeout=5)
        await gate.acquire()
        gone = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gone.cancel()  # a client that disconnects while queued
        await asyncio.gather(gone, return_exceptions=True)
        assert gate.stats().queued == 0
        gate.release(0.01)
        assert gate.stats().in_flight == 0
        assert await gate.acquire() == 0.0  # free again, no wait

    asyncio.run(scenario())


def test_retry_after_follows_the_measured_pace() -> None:
    async def scenario() -> tuple[int, int]:
        gate = Gate(max_concurrent=2, max_queue=10, queue_timeout=5)
        before = gate.retry_after()
        for _ in range(30):  # requests that each held a slot for 8 s
            await gate.acquire()
            gate.release(8.0)
        return before, gate.retry_after()

    before, after = asyncio.run(scenario())
    assert before == 1 and after == 4  # one request ahead at ~8 s, two slots


@pytest.mark.parametrize(("concurrent", "queue", "timeout"), [(0, 1, 1.0), (1, -1, 1.0), (1, 1, 0.0)])
def test_invalid_gate_settings_are_refused(concurrent, queue, timeout) -> None:
    with pytest.raises(ValueError, match="invalid gate"):
        Gate(concurrent, queue, timeout)


def _held_searches(pipeline, monkeypatch) -> tuple[threading.Semaphore, threading.Event]:
    """Searches that wait for ``release``; ``entered`` counts the ones that have started."""
    entered, release = threading.Semaphore(0), threading.Event()
    real_search = pipeline.search

    def held(*args, **kwargs):
        entered.release()
        release.wait(timeout=30)
        return real_search(*args, **kwargs)

    monkeypatch.setattr(pipeline, "search", held)
    return entered, release


def test_a_full_server_answers_503_with_retry_after_and_loses_nothing(pipeline, monkeypatch) -> None:
    """One slot, one queue place: of four concurrent searches, two are served, two get 503 JSON."""
    entered, release = _held_searches(pipeline, monkeypatch)
    settings = pipeline.settings.model_copy(update={"max_concurrent": 1, "max_queue": 1, "queue_timeout": 30})
    with live_server(create_app(settings, pipeline=pipeline)) as base, ThreadPoolExecutor(4) as pool:
        post = lambda: httpx.post(f"{base}/v1/search", json={"query": "revenue"}, timeout=60)  # noqa: E731
        first = pool.submit(post)
        assert entered.acquire(timeout=30)  # the first holds the slot
        second = pool.submit(post)
        metrics = ""
        for _ in range(200):  # until the second is queued
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            if "hybrid_queue_depth 1" in metrics:
                break
            time.sleep(0.02)
        assert "hybrid_queue_depth 1" in metrics and "hybrid_requests_in_flight 1" in metrics
        rejected = [pool.submit(post).result(timeout=30) for _ in range(2)]
        release.set()
        served = [first.result(timeout=60), second.result(timeout=60)]
    assert [r.status_code for r in served] == [200, 200]
    for response in rejected:
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "overloaded"
        assert "retry after" in response.json()["error"]["message"]


def test_a_request_that_waits_too_long_gets_503(pipeline, monkeypatch) -> None:
    entered, release = _held_searches(pipeline, monkeypatch)
    settings = pipeline.settings.model_copy(update={"max_concurrent": 1, "max_queue": 4, "queue_timeout": 0.3})
    with live_server(create_app(settings, pipeline=pipeline)) as base, ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, f"{base}/v1/search", json={"query": "revenue"}, timeout=60)
        assert entered.acquire(timeout=30)
        late = httpx.post(f"{base}/v1/search", json={"query": "revenue"}, timeout=30)
        # Ungated routes pass while the slot is held.
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        release.set()
        assert first.result(timeout=60).status_code == 200
    assert late.status_code == 503 and late.json()["error"]["code"] == "queue_timeout"
    assert "retry-after" in late.headers


def test_queue_settings_come_from_the_environment(monkeypatch) -> None:
    from hybrid import ConfigError, load_settings

    monkeypatch.setenv("HYBRID_MAX_QUEUE", "3")
    monkeypatch.setenv("HYBRID_MAX_CONCURRENT", "4")
    settings = load_settings()
    assert (settings.max_queue, settings.max_concurrent) == (3, 4)
    monkeypatch.setenv("HYBRID_MAX_CONCURRENT", "0")
    with pytest.raises(ConfigError, match="max_concurrent"):
        load_settings()
