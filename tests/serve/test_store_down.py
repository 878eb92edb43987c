"""The PostgreSQL store going away under a running server: a clear 503, never a traceback, and
answers again once it is back, without a restart of hybrid."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve import create_app
from tests.support.postgres import fresh_url, start_server


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory):
    """A PostgreSQL of this test's own, which it stops and starts again."""
    directory = tmp_path_factory.mktemp("pg-own")
    server = start_server(directory)
    yield directory, server.get_uri()
    start_server(directory).cleanup()  # stopped by the test, or not: stop it now


def test_a_store_that_goes_down_is_a_503_and_is_used_again_once_back(home: Path, corpus_dir: Path, fake_embedder, own_postgres) -> None:
    from hybrid import Pipeline, load_settings

    directory, base = own_postgres
    url = fresh_url(base)
    pipeline = Pipeline(load_settings(store=url, adapter="none", min_score=0.2), embedder=fake_embedder)
    assert pipeline.ingest([corpus_dir]).files_added == 3
    search = {"query": "adverse events safety desk", "k": 1}
    with TestClient(create_app(pipeline.settings, pipeline=pipeline), raise_server_exceptions=False) as client:
        assert client.post("/v1/search", json=search).json()["hits"][0]["page"] == 1
        start_server(directory).cleanup()  # PostgreSQL stops: every connection is closed
        for route, body in (("/v1/search", search), ("/v1/query", {"question": "How much did revenue grow?"})):
            response = client.post(route, json=body)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "index_unavailable"
            assert response.headers["retry-after"] == "5"
        assert client.get("/healthz").status_code == 200  # hybrid itself is up
        start_server(directory)  # back: the next request connects again
        assert client.post("/v1/search", json=search).json()["hits"][0]["page"] == 1
