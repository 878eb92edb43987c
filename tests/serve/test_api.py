"""HTTP API through TestClient: contract JSON, refusals, and JSON errors for bad input; on an
index directory and on PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def pipeline(pipeline_on_each_store):
    return pipeline_on_each_store


def test_healthz_is_ok_once_loaded(client) -> None:
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["fast_decode"] == {"base": "off"}  # tests run with HYBRID_FAST_DECODE=off


def test_search_returns_the_cli_json(client) -> None:
    body = client.post("/v1/search", json={"query": "adverse events safety desk", "k": 2}).json()
    assert body["query"] == "adverse events safety desk" and len(body["hits"]) == 2
    top = body["hits"][0]
    assert set(top) == {"source", "page", "chunk_id", "score", "text"}
    assert Path(top["source"]).name == "safety.pdf" and top["page"] == 1


def test_query_answers_with_contract_keys(client) -> None:
    body = client.post("/v1/query", json={"question": "How much did revenue grow?"}).json()
    assert body["route"] == "rag" and body["adapter"] is None
    assert set(body["timings"]) == {"retrieve_ms", "generate_ms", "prefill_ms"}


def test_query_refuses_off_corpus(client) -> None:
    body = client.post("/v1/query", json={"question": "Which koala subspecies sings opera loudly?"}).json()
    assert body["route"] == "refuse" and body["citations"] == []


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"question": ""}, 422, "invalid_request"),
        ({"question": "x" * 5000}, 422, "invalid_request"),
        ({"question": "revenue", "k": 0}, 422, "invalid_request"),
        ({"question": "revenue", "k": "many"}, 422, "invalid_request"),
        ({"q": "revenue"}, 422, "invalid_request"),
        ({"question": "revenue", "adapter": "nosuch"}, 404, "not_found"),
        ({"question": "revenue", "adapter": "../../etc"}, 422, "invalid_request"),
        ({"question": "revenue", "adapter": "/etc/passwd"}, 422, "invalid_request"),
    ],
)
def test_bad_input_gets_a_json_error(client, payload, status, code) -> None:
    response = client.post("/v1/query", json=payload)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_malformed_json_and_unknown_routes_are_json_errors(client) -> None:
    response = client.post("/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()
    assert client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert client.get("/v1/query").status_code == 405


def test_unexpected_failure_never_leaks_a_traceback(client, pipeline, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(pipeline, "ask", boom)
    response = client.post("/v1/query", json={"question": "revenue"})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error; the server log has the details"}}
    assert "Traceback" not in response.text and "secret" not in response.text


def test_keys_guard_v1_routes_but_not_healthz(pipeline) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from serve import create_app

    settings = pipeline.settings.model_copy(update={"api_key": SecretStr("q-key"), "admin_key": SecretStr("a-key")})
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        assert client.get("/healthz").status_code == 200
        missing = client.post("/v1/search", json={"query": "revenue"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        wrong = client.post("/v1/search", json={"query": "revenue"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        for key in ("q-key", "a-key"):
            ok = client.post("/v1/search", json={"query": "revenue"}, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200


def test_a_request_cannot_load_an_adapter_from_a_directory(client, tmp_path, monkeypatch) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "adapter_config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)  # "planted" now resolves as a relative directory
    response = client.post("/v1/query", json={"question": "How much did revenue grow?", "adapter": "planted"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_search_and_query_take_source_and_page_filters(client) -> None:
    body = client.post("/v1/search", json={"query": "revenue safety desk", "k": 5, "sources": ["*safety*"]}).json()
    assert body["hits"] and {Path(h["source"]).name for h in body["hits"]} == {"safety.pdf"}
    body = client.post("/v1/search", json={"query": "revenue expenses", "k": 5, "page_from": 2, "page_to": 2}).json()
    assert body["hits"] and {h["page"] for h in body["hits"]} == {2}
    body = client.post("/v1/query", json={"question": "How much did revenue grow?", "sources": ["*safety*"]}).json()
    assert all(Path(c["source"]).name == "safety.pdf" for c in body["citations"])


def test_bad_filters_are_4xx_json_errors(client) -> None:
    response = client.post("/v1/search", json={"query": "revenue", "sources": ["*nothing-like-this*"]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "search_filter"
    assert "docs list" in response.json()["error"]["message"]
    response = client.post("/v1/search", json={"query": "revenue", "page_from": 3, "page_to": 2})
    assert response.status_code == 422 and "page_from" in response.json()["error"]["message"]
    response = client.post("/v1/search", json={"query": "revenue", "page_from": 0})
    assert response.status_code == 422
    response = client.post("/v1/search", json={"query": "revenue", "sources": []})
    assert response.status_code == 422 and response.json()["error"]["code"]
