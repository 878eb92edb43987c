"""OpenAI-compatible routes through TestClient: shapes, adapters as models, streaming, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from hybrid import BadRequestError


def add_house_versions(registry, base_dir: Path, count: int = 2) -> None:
    """``house@v1..vN``: real LoRA adapters (random, so each changes the outputs) on ``base_dir``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for _ in range(count):
        number, path = registry.create_version("house")
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # a transformers deprecation that PEFT triggers
            torch.manual_seed(number)
            config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
            get_peft_model(model, config).save_pretrained(path)
        meta = {"name": "house", "version": number, "base_model": str(base_dir), "base_model_dir": str(base_dir),
                "created": f"2025-01-0{number}T10:00:00+00:00"}
        registry.finalize("house", number, meta)


@pytest.fixture
def house(pipeline, tiny_model_dir: Path):
    """house@v1 and house@v2 in the pipeline's registry, with v1 active."""
    add_house_versions(pipeline.adapters.registry, tiny_model_dir)
    pipeline.adapters.registry.activate("house", 1)
    return pipeline.adapters.registry


QUESTION = "How much did revenue grow?"


def chat(model: str = "house", question: str = QUESTION, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": question}], **extra}


def events(response) -> list:
    """The ``data:`` payloads of a server-sent event stream: dicts, and the final "[DONE]"."""
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in response.text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            payload = block.removeprefix("data: ")
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_models_lists_base_and_each_adapter_as_name_and_version(client, house) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    models = {m["id"]: m for m in body["data"]}
    assert list(models) == ["base", "house", "house@v1", "house@v2"]
    assert all(m["object"] == "model" and m["owned_by"] == "hybrid" for m in models.values())
    assert (models["base"]["adapter"], models["house"]["adapter"], models["house@v2"]["adapter"]) == (None, "house@v1", "house@v2")
    assert models["house@v2"]["created"] > models["house@v1"]["created"] > 0


def test_models_follow_activation(client, house) -> None:
    house.activate("house", 2)
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["house"]["adapter"] == "house@v2"


def test_completion_answers_like_query_with_openai_fields(client, house) -> None:
    body = client.post("/v1/chat/completions", json=chat("house")).json()
    query = client.post("/v1/query", json={"question": QUESTION, "adapter": "house"}).json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "house@v1" and body["adapter"] == "house@v1" and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": query["answer"]}
    assert (body["citations"], body["route"], body["grounded"]) == (query["citations"], "rag", query["grounded"])
    assert body["citations"] and set(body["citations"][0]) == {"n", "source", "page", "chunk_id", "quote"}
    usage = body["usage"]
    # The whole prompt (instructions and passages too), not the question's few tokens.
    assert usage["prompt_tokens"] > len(QUESTION) and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_max_tokens_bounds_the_reply(client, pipeline, monkeypatch) -> None:
    asked = []
    generator = pipeline.generator(None)
    real = generator.generate

    def recording(messages, **options):
        asked.append(options["max_new_tokens"])
        return real(messages, **options)

    monkeypatch.setattr(generator, "generate", recording)
    body = client.post("/v1/chat/completions", json=chat("base", max_tokens=3)).json()
    assert asked == [3] and 0 < body["usage"]["completion_tokens"] <= 3
    client.post("/v1/chat/completions", json=chat("base", max_tokens=9, max_completion_tokens=4))
    client.post("/v1/chat/completions", json=chat("base"))
    assert asked[1:] == [4, pipeline.settings.max_new_tokens]  # the newer field wins; else the setting


def test_model_picks_the_adapter(client, house) -> None:
    answers = {}
    for model in ("base", "house", "house@v1", "house@v2"):
        body = client.post("/v1/chat/completions", json=chat(model)).json()
        answers[model] = (body["model"], body["adapter"])
    assert answers == {
        "base": ("base", None),
        "house": ("house@v1", "house@v1"),
        "house@v1": ("house@v1", "house@v1"),
        "house@v2": ("house@v2", "house@v2"),
    }


def test_the_last_user_message_is_the_question(client, house) -> None:
    single = client.post("/v1/chat/completions", json=chat("base")).json()
    turns = [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Which koala sings opera?"},
        {"role": "assistant", "content": "None that I know of."},
        {"role": "user", "content": [{"type": "text", "text": "How much did "}, {"type": "text", "text": "revenue grow?"}]},
    ]
    extra = {"temperature": 0.7, "top_p": 0.5, "stop": ["\n"], "user": "u1", "tools": [], "response_format": {"type": "text"}}
    body = client.post("/v1/chat/completions", json={"model": "base", "messages": turns, **extra}).json()
    assert body["choices"][0]["message"] == single["choices"][0]["message"]
    assert body["citations"] == single["citations"]


def test_usage_takes_the_pipelines_counts_when_the_answer_has_them(client, pipeline, monkeypatch) -> None:
    ask = pipeline.ask

    def counted(question, options, **kwargs):
        answer = ask(question, options, **kwargs)
        answer.prompt_tokens, answer.completion_tokens = 431, 12
        return answer

    monkeypatch.setattr(pipeline, "ask", counted)
    usage = client.post("/v1/chat/completions", json=chat("base")).json()["usage"]
    assert usage == {"prompt_tokens": 431, "completion_tokens": 12, "total_tokens": 443}


def test_refusal_is_a_completion_with_no_citations_and_no_tokens(client) -> None:
    body = client.post("/v1/chat/completions", json=chat("base", "Which koala subspecies sings opera loudly?")).json()
    assert body["route"] == "refuse" and body["citations"] == []
    assert body["choices"][0]["message"]["content"] and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (chat("nosuch"), 404),
        (chat("nosuch@v1"), 404),
        (chat("house@v9"), 404),
        (chat("../../etc"), 422),
        (chat("/etc/passwd"), 422),
        ({"messages": [{"role": "user", "content": QUESTION}]}, 422),
        ({"model": "base", "messages": []}, 422),
        ({"model": "base", "messages": [{"role": "wizard", "content": QUESTION}]}, 422),
        ({"model": "base", "messages": [{"role": "system", "content": QUESTION}]}, 422),
        ({"model": "base", "messages": [{"role": "user", "content": "   "}]}, 422),
        ({"model": "base", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 422),
        (chat("base", "x" * 5000), 422),
        (chat("base", max_tokens=5000), 422),
        (chat("base", max_tokens=0), 422),
        (chat("base", max_completion_tokens=4096), 422),
        (chat("base", n=2), 422),
        (chat("base", temperature=3), 422),
        (chat("base", unsupported="hide"), 422),
        (chat("base", tools=[{"type": "function", "function": {"name": "f"}}]), 422),
        (chat("base", response_format={"type": "json_object"}), 422),
        (chat("nosuch", stream=True), 404),
    ],
)
def test_bad_requests_get_json_errors(client, house, payload, status) -> None:
    response = client.post("/v1/chat/completions", json=payload)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == {404: "not_found", 422: "invalid_request"}[status] and error["message"]


def test_unknown_model_message_names_the_models(client, house) -> None:
    message = client.post("/v1/chat/completions", json=chat("nosuch")).json()["error"]["message"]
    assert "'nosuch'" in message and "base" in message and "house" in message


def test_stream_sends_openai_chunks_then_done(client, house) -> None:
    whole = client.post("/v1/chat/completions", json=chat("house")).json()
    with client.stream("POST", "/v1/chat/completions", json=chat("house", stream=True)) as response:
        response.read()
    data = events(response)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["model"] == "house@v1" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert len([d for d in deltas if d]) > 1  # token by token, not the whole answer at once
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["choices"][0]["delta"] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert (last["citations"], last["route"], last["grounded"]) == (whole["citations"], "rag", whole["grounded"])
    # The tiny model's raw reply fails the grounding check, so the final text replaces it.
    assert last.get("answer", "".join(deltas)) == whole["choices"][0]["message"]["content"]


def test_strict_stream_sends_only_the_checked_answer(client, house) -> None:
    whole = client.post("/v1/chat/completions", json=chat("house", strict=True)).json()
    chunks = events(client.post("/v1/chat/completions", json=chat("house", stream=True, strict=True)))[:-1]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"] and "answer" not in chunks[-1]
    assert chunks[-1]["route"] == whole["route"] and chunks[-1]["reason"] == whole["reason"]


def test_query_options_reach_the_pipeline(client, house) -> None:
    whole = client.post("/v1/chat/completions", json=chat("base", k=1)).json()
    assert whole["route"] == "rag" and Path(whole["citations"][0]["source"]).name.startswith("quarterly")
    # Revenue is not in safety.pdf: restricted to it, the same question is refused.
    body = client.post("/v1/chat/completions", json=chat("base", sources=["safety.pdf"], k=1)).json()
    assert body["route"] == "refuse" and body["citations"] == []
    flagged = client.post("/v1/chat/completions", json=chat("base", unsupported="flag")).json()
    query = client.post("/v1/query", json={"question": QUESTION, "adapter": "none", "unsupported": "flag"}).json()
    assert (flagged["choices"][0]["message"]["content"], flagged["grounded"]) == (query["answer"], query["grounded"])
    bad = client.post("/v1/chat/completions", json=chat("base", page_from=3, page_to=1))
    assert bad.status_code == 422


def test_stream_usage_comes_last_when_asked_for(client, house) -> None:
    payload = chat("house", stream=True, stream_options={"include_usage": True})
    chunks = events(client.post("/v1/chat/completions", json=payload))[:-1]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all(c["usage"] is None for c in chunks[:-1])
    # strict generates the reply whole, so its stream reports the same counts as the plain reply.
    whole = client.post("/v1/chat/completions", json=chat("house", strict=True)).json()
    strict = events(client.post("/v1/chat/completions", json={**payload, "strict": True}))[-2]
    assert strict["usage"] == whole["usage"]


def _fake_stream(pipeline, tokens, *, fail: Exception | None = None):
    def ask_stream(question, options, **kwargs):
        assert options.allow_path is False
        answer = pipeline.ask(question, options)
        for token in tokens(answer.answer):
            yield "token", token
        if fail is not None:
            raise fail
        yield "answer", answer

    return ask_stream


def test_stream_relays_token_events_as_deltas(client, pipeline, house, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "ask_stream", _fake_stream(pipeline, lambda text: [text[:3], text[3:-2]]))
    whole = client.post("/v1/chat/completions", json=chat("house")).json()["choices"][0]["message"]["content"]
    chunks = events(client.post("/v1/chat/completions", json=chat("house", stream=True)))[:-1]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    # The tokens as they came, then what citing added to them (here the last two characters).
    assert deltas == [whole[:3], whole[3:-2], whole[-2:]] and "answer" not in chunks[-1]


def test_stream_sends_the_final_text_when_citing_rewrote_it(client, pipeline, house, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "ask_stream", _fake_stream(pipeline, lambda text: ["Something else entirely."]))
    whole = client.post("/v1/chat/completions", json=chat("house")).json()["choices"][0]["message"]["content"]
    chunks = events(client.post("/v1/chat/completions", json=chat("house", stream=True)))[:-1]
    assert chunks[-1]["answer"] == whole and chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (BadRequestError("generation went wrong"), {"code": "bad_request", "message": "generation went wrong"}),
        (RuntimeError("secret internal detail"),
         {"code": "internal_error", "message": "internal error; the server log has the details"}),
    ],
)
def test_an_error_mid_stream_is_an_error_event(client, pipeline, house, monkeypatch, failure, error) -> None:
    stream = _fake_stream(pipeline, lambda text: [text[:3]], fail=failure)
    monkeypatch.setattr(pipeline, "ask_stream", stream)
    response = client.post("/v1/chat/completions", json=chat("house", stream=True))
    assert response.status_code == 200
    data = events(response)
    assert data[-2] == {"error": error} and data[-1] == "[DONE]"
    assert "Traceback" not in response.text and "secret" not in response.text


def test_keys_guard_the_openai_routes(pipeline) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from serve import create_app

    settings = pipeline.settings.model_copy(update={"api_key": SecretStr("q-key")})
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.post("/v1/chat/completions", json=chat("base")).status_code == 401
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        assert client.get("/v1/models", headers={"Authorization": "Bearer q-key"}).status_code == 200


def test_healthz_names_each_loaded_adapter_by_version(client, house) -> None:
    client.post("/v1/chat/completions", json=chat("house"))
    states = client.get("/healthz").json()["fast_decode"]
    assert states["house@v1"] == "off"  # tests run with HYBRID_FAST_DECODE=off
