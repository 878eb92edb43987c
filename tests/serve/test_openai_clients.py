"""The real ``openai`` client and LangChain's ``ChatOpenAI`` against a live uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from serve import create_app
from tests.serve.test_openai_api import QUESTION, add_house_versions
from tests.support.live_server import live_server

KEY = "client-test-key"


@pytest.fixture
def base_url(pipeline, tiny_model_dir) -> Iterator[str]:
    """A live server with house@v1 (active) and house@v2, guarded by a query key: its /v1 URL."""
    add_house_versions(pipeline.adapters.registry, tiny_model_dir)
    pipeline.adapters.registry.activate("house", 1)
    settings = pipeline.settings.model_copy(update={"api_key": SecretStr(KEY)})
    with live_server(create_app(settings, pipeline=pipeline)) as root:
        yield f"{root}/v1"


def test_openai_client_lists_models_answers_and_streams(base_url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["base", "house", "house@v1", "house@v2"]

    completion = client.chat.completions.create(model="house", messages=[{"role": "user", "content": QUESTION}])
    assert completion.model == "house@v1" and completion.choices[0].finish_reason == "stop"
    text = completion.choices[0].message.content
    assert text and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # Extra fields survive in the client's objects.
    extra = completion.model_extra
    assert extra["route"] == "rag" and extra["citations"] and extra["citations"][0]["page"] >= 1

    stream = client.chat.completions.create(
        model="house",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1  # token by token
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finished) == 1 and finished[0].model_extra["citations"] == extra["citations"]
    # The raw tokens, or, when the grounding check rewrote them, the final text beside the citations.
    assert finished[0].model_extra.get("answer", "".join(deltas)) == text
    usage = chunks[-1].usage
    assert usage.completion_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_client_raises_its_own_errors(base_url: str, pipeline, monkeypatch) -> None:
    import openai

    from hybrid import BadRequestError

    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=60)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nosuch", messages=[{"role": "user", "content": QUESTION}])
    assert "no model 'nosuch'" in missing.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": QUESTION}], max_tokens=100_000)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()

    def failing(question, options, **kwargs):
        yield "token", "The"
        raise BadRequestError("generation went wrong")

    monkeypatch.setattr(pipeline, "ask_stream", failing)
    stream = client.chat.completions.create(model="base", messages=[{"role": "user", "content": QUESTION}], stream=True)
    with pytest.raises(openai.APIError, match="generation went wrong"):
        list(stream)


def test_langchain_chat_openai_invokes_and_streams(base_url: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=base_url, api_key=KEY, model="house", max_retries=0, timeout=60)
    message = llm.invoke(QUESTION)
    assert message.content and message.response_metadata["model_name"] == "house@v1"
    assert message.usage_metadata["output_tokens"] > 0
    pieces = [chunk.content for chunk in llm.stream(QUESTION) if chunk.content]
    assert len(pieces) > 1  # token by token
    # strict: only the checked answer is sent, so the stream adds up to the same reply as invoke.
    strict = ChatOpenAI(base_url=base_url, api_key=KEY, model="house", max_retries=0, extra_body={"strict": True})
    assert "".join(chunk.content for chunk in strict.stream(QUESTION)) == strict.invoke(QUESTION).content
