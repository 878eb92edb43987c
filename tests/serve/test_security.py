"""Keys (401/403 rules, constant-time comparison), request-size limits (413/422 JSON), the serve
command's refusal to listen on the network without keys, and no request path outside HYBRID_HOME."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serve import create_app, limits

QUERY, ADMIN = "q-key", "a-key"
ADMIN_ROUTES = [
    ("post", "/v1/adapters/house/activate", {"json": {"version": "v1"}}),
    ("post", "/v1/documents", {"files": {"file": ("a.pdf", b"%PDF-1.4 nothing", "application/pdf")}}),
    ("get", "/v1/jobs/" + "0" * 32, {}),
]


def _client(pipeline, **keys: str | None) -> TestClient:
    update = {name: SecretStr(value) if value else None for name, value in keys.items()}
    return TestClient(create_app(pipeline.settings.model_copy(update=update), pipeline=pipeline), raise_server_exceptions=False)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("method", "path", "kwargs"), ADMIN_ROUTES)
def test_admin_routes_want_the_admin_key(pipeline, method, path, kwargs) -> None:
    with _client(pipeline, api_key=QUERY, admin_key=ADMIN) as client:
        call = getattr(client, method)
        missing = call(path, **kwargs)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert call(path, headers=_bearer("nope"), **kwargs).status_code == 401
        assert call(path, headers={"Authorization": f"Basic {ADMIN}"}, **kwargs).status_code == 401
        forbidden = call(path, headers=_bearer(QUERY), **kwargs)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
        assert "admin key" in forbidden.json()["error"]["message"]
        allowed = call(path, headers=_bearer(ADMIN), **kwargs)
        assert allowed.status_code not in (401, 403), allowed.text


def test_query_routes_take_either_key_and_adapters_list_needs_the_query_key(pipeline) -> None:
    with _client(pipeline, api_key=QUERY, admin_key=ADMIN) as client:
        assert client.get("/v1/adapters").status_code == 401
        for key in (QUERY, ADMIN):
            assert client.get("/v1/adapters", headers=_bearer(key)).status_code == 200
            assert client.post("/v1/search", json={"query": "revenue"}, headers=_bearer(key)).status_code == 200


def test_admin_routes_are_closed_when_only_the_query_key_is_set(pipeline) -> None:
    with _client(pipeline, api_key=QUERY, admin_key=None) as client:
        closed = client.post("/v1/adapters/house/activate", json={"version": "v1"}, headers=_bearer(QUERY))
        assert closed.status_code == 403 and "HYBRID_ADMIN_KEY" in closed.json()["error"]["message"]
        assert client.post("/v1/adapters/house/activate", json={"version": "v1"}).status_code == 401
        assert client.post("/v1/search", json={"query": "revenue"}, headers=_bearer(QUERY)).status_code == 200


def test_admin_key_alone_guards_admin_routes_and_leaves_queries_open(pipeline) -> None:
    with _client(pipeline, api_key=None, admin_key=ADMIN) as client:
        assert client.post("/v1/search", json={"query": "revenue"}).status_code == 200
        assert client.post("/v1/adapters/house/activate", json={"version": "v1"}).status_code == 401
        opened = client.post("/v1/adapters/house/activate", json={"version": "v1"}, headers=_bearer(ADMIN))
        assert opened.status_code == 404  # past the key check: there is no adapter named house


def test_without_keys_admin_routes_are_open(client) -> None:
    response = client.post("/v1/adapters/house/activate", json={"version": "v1"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_keys_are_compared_in_constant_time(pipeline, monkeypatch) -> None:
    import serve.auth

    compared: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(serve.auth.hmac, "compare_digest", spy)
    with _client(pipeline, api_key=QUERY, admin_key=ADMIN) as client:
        client.post("/v1/search", json={"query": "revenue"}, headers=_bearer("guess"))
        client.post("/v1/adapters/house/activate", json={"version": "v1"}, headers=_bearer("guess"))
    assert (b"guess", QUERY.encode()) in compared and (b"guess", ADMIN.encode()) in compared


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_BODY_BYTES", 2000)
    big = json.dumps({"question": "revenue " * 400}).encode()
    response = client.post("/v1/query", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large" and "2,000" in response.json()["error"]["message"]
    small = client.post("/v1/search", json={"query": "revenue"})
    assert small.status_code == 200


def test_a_chunked_body_is_cut_off_at_the_limit(client, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_BODY_BYTES", 2000)

    def chunks():  # no Content-Length: the server only learns the size while reading
        yield b'{"query": "'
        for _ in range(100):
            yield b"revenue " * 10
        yield b'"}'

    response = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert "more than 2,000" in response.json()["error"]["message"]


def test_uploads_have_their_own_larger_limit(client, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_BODY_BYTES", 2000)
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 20_000)
    body = b"%PDF-1.4\n" + b"0" * 5000  # over the JSON limit, under the upload limit
    accepted = client.post("/v1/documents", files={"file": ("a.pdf", body, "application/pdf")})
    assert accepted.status_code == 202
    refused = client.post("/v1/documents", files={"file": ("a.pdf", body * 5, "application/pdf")})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"


def test_an_unreadable_content_length_is_a_json_400(client) -> None:
    response = client.post("/v1/search", content=b"{}", headers={"content-type": "application/json", "content-length": "lots"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "payload",
    [{"question": "x" * 4001}, {"question": "revenue", "k": 51}, {"question": "revenue", "k": -1}],
)
def test_field_limits_are_422_json(client, payload) -> None:
    response = client.post("/v1/query", json=payload)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


# -- no request reaches the file system outside HYBRID_HOME ---------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/adapters/..%2F..%2Fetc/activate", 404),  # an encoded slash never matches the route
        ("/v1/adapters/%2e%2e/activate", 422),
        ("/v1/adapters/.hidden/activate", 422),
        ("/v1/adapters/house%00/activate", 422),
    ],
)
def test_adapter_names_in_the_path_cannot_traverse(client, home, path, status) -> None:
    response = client.post(path, json={"version": "v1"})
    assert response.status_code == status and "error" in response.json()
    assert not (home / "adapters").exists()  # nothing was created or looked up outside a valid name


@pytest.mark.parametrize("route", ["/v1/query", "/v1/chat/completions"])
def test_no_request_loads_an_adapter_from_a_directory(client, tmp_path, route) -> None:
    planted = tmp_path / "planted"  # an adapter directory outside the registry; tmp_path is the cwd
    planted.mkdir()
    (planted / "adapter_config.json").write_text("{}")
    for ref in (str(planted), "planted", "./planted", "../" + tmp_path.name + "/planted"):
        if route == "/v1/query":
            response = client.post(route, json={"question": "How much did revenue grow?", "adapter": ref})
        else:
            response = client.post(route, json={"model": ref, "messages": [{"role": "user", "content": "revenue?"}]})
        assert response.status_code in (404, 422), (ref, response.text)
        assert response.json()["error"]["code"] in ("not_found", "invalid_request")


@pytest.mark.parametrize("version", ["../v1", "v1/../../x", "1", "v0", "v1@", "v" + "9" * 7])
def test_adapter_versions_must_be_vN(client, version) -> None:
    response = client.post("/v1/adapters/house/activate", json={"version": version})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("job", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "0" * 31 + "g", "0" * 33])
def test_job_ids_cannot_traverse(client, job) -> None:
    response = client.get(f"/v1/jobs/{job}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_an_upload_file_name_never_becomes_a_path(client, home, tmp_path) -> None:
    body = b"%PDF-1.4\n% a document\n"
    response = client.post("/v1/documents", files={"file": ("../../../escaped.pdf", body, "application/pdf")})
    assert response.status_code == 202
    import hashlib

    sha = hashlib.sha256(body).hexdigest()
    uploads = home / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == [sha, f"{sha}.json"]
    assert [p.name for p in (uploads / sha).iterdir()] == ["escaped.pdf"]  # the last part only
    assert json.loads((uploads / f"{sha}.json").read_text())["name"] == "escaped.pdf"
    found = list(tmp_path.rglob("escaped.pdf")) + list(home.parent.parent.rglob("escaped.pdf"))
    assert found and all(path.parent == uploads / sha for path in found)


# -- hybrid serve refuses the network without keys --------------------------------------------


def _serve(monkeypatch, *args: str, **env: str):
    """Run `hybrid serve` in-process with the server and model loading stubbed out."""
    import serve

    from hybrid.cli import main
    from hybrid.pipeline import Pipeline

    started: list[str] = []
    monkeypatch.setattr(Pipeline, "load", lambda self, adapter=None: None)
    monkeypatch.setattr(serve, "run", lambda app, host, port, **kw: started.append(host))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(main, ["serve", *args]), started


def test_serve_refuses_a_network_address_without_keys(home, monkeypatch) -> None:
    result, started = _serve(monkeypatch, "--host", "0.0.0.0")
    assert result.exit_code == 2 and not started  # a usage error
    assert "HYBRID_API_KEY" in result.output and "--insecure" in result.output


def test_serve_listens_on_the_network_with_keys_or_insecure(home, monkeypatch) -> None:
    result, started = _serve(monkeypatch, "--host", "0.0.0.0", "--insecure")
    assert result.exit_code == 0 and started == ["0.0.0.0"]
    result, started = _serve(monkeypatch, "--host", "0.0.0.0", HYBRID_API_KEY=QUERY, HYBRID_ADMIN_KEY=ADMIN)
    assert result.exit_code == 0 and started == ["0.0.0.0"]


def test_serve_refuses_the_same_key_for_queries_and_admin(home, monkeypatch) -> None:
    result, started = _serve(monkeypatch, HYBRID_API_KEY=QUERY, HYBRID_ADMIN_KEY=QUERY)
    assert result.exit_code == 2 and not started and "HYBRID_ADMIN_KEY" in result.output


def test_serve_says_admin_routes_are_closed_without_an_admin_key(home, monkeypatch) -> None:
    result, started = _serve(monkeypatch, HYBRID_API_KEY=QUERY)
    assert result.exit_code == 0 and started == ["127.0.0.1"]
    assert "admin routes are closed" in result.stderr


@pytest.mark.parametrize(
    ("name", "stored"),
    [("..", "upload.pdf"), (".hidden.pdf", "hidden.pdf"), ("a:b*c?.PDF", "a_b_c_.pdf"), ("report", "report.pdf"),
     ("Bericht Über 2024.pdf", "Bericht Über 2024.pdf"), ("\x00x.pdf", "_x.pdf")],
)
def test_stored_upload_names_are_plain_file_names(name, stored) -> None:
    from serve.admin import _file_name

    assert _file_name(name) == stored


# -- the same rules hold in the app, however it is started ------------------------------------


def test_equal_keys_are_refused_by_the_settings_and_by_create_app(pipeline) -> None:
    from pydantic import ValidationError

    from hybrid import Settings
    from hybrid.config import load_settings
    from hybrid.errors import ConfigError

    with pytest.raises(ValidationError, match="the same as HYBRID_API_KEY"):
        Settings(api_key=QUERY, admin_key=QUERY)
    with pytest.raises(ConfigError, match="the same as HYBRID_API_KEY"):
        load_settings(api_key=QUERY, admin_key=QUERY)
    copied = pipeline.settings.model_copy(update={"api_key": SecretStr(QUERY), "admin_key": SecretStr(QUERY)})
    with pytest.raises(ConfigError, match="the same as HYBRID_API_KEY"):
        create_app(copied, pipeline=pipeline)


def _call(app, scope_type: str = "http", server=("192.0.2.10", 8000)) -> list[dict]:
    """One request straight through the ASGI app, as a server bound to `server` would pass it."""
    import asyncio

    sent: list[dict] = []
    scope = {"type": scope_type, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"example")], "client": ("192.0.2.99", 5000),
             "server": server}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False} if scope_type == "http" else {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("server", "keys", "refused"),
    [
        (("192.0.2.10", 8000), {}, True),  # the network, no keys
        (("::ffff:192.0.2.10", 8000), {}, True),
        (("2001:db8::1", 8000), {}, True),
        (("127.0.0.1", 8000), {}, False),  # bound to 0.0.0.0, reached on loopback
        (("::ffff:127.0.0.1", 8000), {}, False),
        (("::1", 8000), {}, False),
        (("192.0.2.10", 8000), {"api_key": QUERY, "admin_key": ADMIN}, False),
        (("192.0.2.10", 8000), {"insecure": True}, False),
        (None, {}, False),  # a Unix socket
    ],
)
def test_a_server_without_keys_answers_the_network_403(pipeline, server, keys, refused) -> None:
    from serve.auth import LoopbackWithoutKeys

    update = {k: SecretStr(v) if isinstance(v, str) else v for k, v in keys.items()}
    settings = pipeline.settings.model_copy(update=update)

    async def inner(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = _call(LoopbackWithoutKeys(inner, get_settings=lambda: settings), server=server)
    assert sent[0]["status"] == (403 if refused else 200)
    if refused:
        error = json.loads(sent[1]["body"])["error"]
        assert error["code"] == "keys_required"
        assert "HYBRID_API_KEY" in error["message"] and "HYBRID_INSECURE" in error["message"]


def test_a_websocket_from_the_network_is_closed_without_keys(pipeline) -> None:
    from serve.auth import LoopbackWithoutKeys

    async def inner(scope, receive, send) -> None:
        await send({"type": "websocket.accept"})

    sent = _call(LoopbackWithoutKeys(inner, get_settings=lambda: pipeline.settings), scope_type="websocket")
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_the_app_holds_the_rule_under_any_server(pipeline) -> None:
    """create_app's stack, not only the middleware alone: /healthz from the network is 403."""
    app = create_app(pipeline.settings, pipeline=pipeline)
    with TestClient(app):  # runs the lifespan, so the app has its settings
        sent = _call(app)
        assert sent[0]["status"] == 403
        assert _call(app, server=("127.0.0.1", 8000))[0]["status"] == 200


def test_serve_takes_insecure_from_the_environment(home, monkeypatch) -> None:
    result, started = _serve(monkeypatch, "--host", "0.0.0.0", HYBRID_INSECURE="1")
    assert result.exit_code == 0 and started == ["0.0.0.0"]
