"""Adapters at runtime: GET /v1/adapters, POST /v1/adapters/{name}/activate, and switching
versions under load on a real uvicorn server without failing a request."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from serve import create_app
from tests.support.adapters import make_lora_registry

QUESTION = {"question": "How much did revenue grow?"}
# PEFT calls a transformers property that warns about its own deprecation (the CLI silences it too).
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


@pytest.fixture(scope="module")
def lora_registry(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """house@v1..v3: real LoRA adapters (random weights) on the tiny model, v1 active; legal@v1, never activated."""
    return make_lora_registry(tmp_path_factory.mktemp("adapters"), tiny_model_dir)


@pytest.fixture
def house_pipeline(pipeline, lora_registry: Path, fake_embedder):
    """The test pipeline's index, answering with whatever version 'house' stands for."""
    from hybrid import Pipeline

    shutil.copytree(lora_registry, pipeline.settings.adapters_dir)
    return Pipeline(pipeline.settings.model_copy(update={"adapter": "house"}), embedder=fake_embedder)


@pytest.fixture
def house_client(house_pipeline):
    with TestClient(create_app(house_pipeline.settings, pipeline=house_pipeline), raise_server_exceptions=False) as c:
        yield c


def test_adapters_lists_names_versions_and_the_active_one(house_client) -> None:
    response = house_client.get("/v1/adapters")
    assert response.status_code == 200
    assert response.json() == [
        {"name": "house", "versions": ["v1", "v2", "v3"], "active": "v1"},
        {"name": "legal", "versions": ["v1"], "active": None},
    ]


def test_adapters_is_an_empty_list_without_a_registry(client) -> None:
    assert client.get("/v1/adapters").json() == []


def test_activate_switches_the_next_request_without_a_restart(house_client) -> None:
    assert house_client.post("/v1/query", json=QUESTION).json()["adapter"] == "house@v1"
    response = house_client.post("/v1/adapters/house/activate", json={"version": "v2"})
    assert response.status_code == 200 and response.json() == {"name": "house", "active": "v2", "previous": "v1"}
    assert house_client.post("/v1/query", json=QUESTION).json()["adapter"] == "house@v2"
    assert house_client.get("/v1/adapters").json()[0]["active"] == "v2"
    pinned = house_client.post("/v1/query", json={**QUESTION, "adapter": "house@v3"}).json()
    assert pinned["adapter"] == "house@v3"  # a per-request adapter still wins


def test_activating_a_version_that_does_not_exist_is_a_404_listing_the_versions(house_client) -> None:
    missing = house_client.post("/v1/adapters/house/activate", json={"version": "v9"})
    assert missing.status_code == 404 and "house@v1, house@v2, house@v3" in missing.json()["error"]["message"]
    unknown = house_client.post("/v1/adapters/medical/activate", json={"version": "v1"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert house_client.get("/v1/adapters").json()[0]["active"] == "v1"  # unchanged


@pytest.mark.parametrize("body", [{}, {"version": 2}, {"version": "v2", "force": True}])
def test_activate_bodies_are_validated(house_client, body) -> None:
    response = house_client.post("/v1/adapters/house/activate", json=body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_a_generator_evicted_while_in_use_finishes_its_work(house_pipeline) -> None:
    from hybrid.generators import MAX_GENERATORS

    others = ["house@v2", "house@v3", "legal@v1"][:MAX_GENERATORS]  # enough to push house@v1 out
    assert len(others) == MAX_GENERATORS
    first = house_pipeline.generator(house_pipeline.adapters.resolve("house@v1"))
    messages = [{"role": "user", "content": "How much did revenue grow?"}]
    replies, errors = [], []

    def generate() -> None:
        try:
            for _ in range(4):
                replies.append(first.generate(messages, max_new_tokens=8).text)
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    worker = threading.Thread(target=generate)
    worker.start()
    for ref in others:
        house_pipeline.generator(house_pipeline.adapters.resolve(ref))
    worker.join(timeout=120)
    assert errors == [] and len(replies) == 4
    assert house_pipeline.generator(house_pipeline.adapters.resolve("house@v1")) is not first  # loaded again
    assert first.generate(messages, max_new_tokens=8).text == replies[0]  # the evicted one still works


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_activation_under_load_fails_no_request(house_pipeline) -> None:
    """Clients query a real server while versions flip v1 -> v2 -> v3 -> v1 -> v2: with two
    generators kept in memory, the flips also evict generators, some while requests use them."""
    port = _free_port()
    app = create_app(house_pipeline.settings, pipeline=house_pipeline)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    results: list[tuple[float, int, str | None]] = []  # (sent, status, adapter), appended when answered

    def fire() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post("/v1/query", json=QUESTION)
                adapter = response.json().get("adapter") if response.status_code == 200 else response.text
                results.append((sent, response.status_code, adapter))

    def answered_since(moment: float) -> None:
        """Wait until a request sent after ``moment`` has been answered (no fixed sleeps)."""
        deadline = time.monotonic() + 120
        while not any(sent > moment for sent, _, _ in list(results)):
            assert time.monotonic() < deadline, "no answer within 120 s"
            time.sleep(0.02)

    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        switches = []  # (time the activation returned, version now active)
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(fire) for _ in range(3)]
            with httpx.Client(base_url=base, timeout=60) as admin:
                answered_since(0.0)
                for version in ("v2", "v3", "v1", "v2"):
                    response = admin.post("/v1/adapters/house/activate", json={"version": version})
                    assert response.status_code == 200, response.text
                    switches.append((time.monotonic(), version))
                    answered_since(switches[-1][0])  # clients still in flight on the previous version
            stop.set()
            for future in futures:
                future.result()
    finally:
        stop.set()
        server.should_exit = True
        thread.join(timeout=10)

    assert len(results) >= 5
    assert [r for r in results if r[1] != 200] == []
    assert {adapter for _, _, adapter in results} == {"house@v1", "house@v2", "house@v3"}
    for sent, _, adapter in results:
        active = [version for returned, version in switches if returned < sent]
        if active:  # sent after an activation returned: answered by that version or a later one
            later = [v for returned, v in switches if returned >= sent]
            assert adapter in {f"house@{v}" for v in [active[-1], *later]}
    after_last = [adapter for sent, _, adapter in results if sent > switches[-1][0]]
    assert after_last and set(after_last) == {"house@v2"}
