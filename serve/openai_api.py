"""OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Any OpenAI client (the ``openai`` package, LangChain's ``ChatOpenAI``) can talk to the server.
``model`` picks the adapter: ``base`` (the base model alone), ``NAME`` (its active version) or
``NAME@vN``. The last user message is the question; it goes through the same pipeline as
``POST /v1/query`` (retrieval, refusal, citations, grounding), so earlier turns and system
messages do not change the answer. Decoding is greedy: ``temperature`` and ``top_p`` are
accepted and ignored. The reply adds ``citations``, ``route``, ``grounded``, ``adapter`` and
``reason`` beside OpenAI's fields (``EXTRA_FIELDS``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from hybrid import Answer, AskOptions, HybridError, NotFoundError, Pipeline
from hybrid.limits import K_MAX, K_MIN, MAX_NEW_TOKENS
from serve.auth import require_query_key
from serve.deps import get_pipeline
from serve.schemas import ADAPTER_REF, MAX_TEXT, STRICT, ErrorResponse, Filters
from serve.streams import EventStream, run_watched

openai_router = APIRouter(prefix="/v1", dependencies=[Depends(require_query_key)], tags=["openai"])
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
logger = logging.getLogger("hybrid.serve")
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 422, 503)}
CHAT_RESPONSES = {
    **ERRORS,
    200: {
        "description": "A chat.completion; with \"stream\": true, chat.completion.chunk server-sent events.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}
BASE_MODEL = "base"
EXTRA_FIELDS = ("citations", "route", "grounded", "adapter", "reason")
MAX_TOKENS = MAX_NEW_TOKENS
# OpenAI's own request fields that greedy answers from documents have no use for: accepted, so
# that every OpenAI client works unchanged, and ignored. Any other unknown field is a 422, as on
# every route (serve.schemas.STRICT).
IGNORED_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "logit_bias", "logprobs", "metadata", "modalities",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_retention",
    "reasoning_effort", "safety_identifier", "seed", "service_tier", "stop", "store", "tool_choice",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
# The same for a message's fields beside role and content.
IGNORED_MESSAGE_FIELDS = frozenset({"name", "tool_calls", "tool_call_id", "refusal", "audio", "function_call"})


def _known_fields(value: Any, model: type[BaseModel], ignored: frozenset[str]) -> Any:
    """``value`` without the ignored fields; ValueError naming any field neither known nor ignored."""
    if not isinstance(value, dict):
        return value
    unknown = sorted(set(value) - set(model.model_fields) - ignored)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    return {key: item for key, item in value.items() if key not in ignored}


class TextPart(BaseModel):
    """One part of a message's content; only text parts are understood."""

    model_config = STRICT

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = STRICT

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        return _known_fields(value, cls, IGNORED_MESSAGE_FIELDS)

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = STRICT

    include_usage: bool = False


class ResponseFormat(BaseModel):
    """Only plain text replies: the answer is prose with citation markers."""

    model_config = STRICT

    type: Literal["text"]


class ChatRequest(Filters):
    """OpenAI's chat request. OpenAI's other fields, which greedy answers from documents cannot
    use (``top_p``, penalties, ``seed``, ``stop``, ``user``...), are accepted and ignored; a field
    that neither OpenAI nor this server defines is a 422.

    Beyond OpenAI's fields (``extra_body`` in the clients): ``k``, ``strict``, ``unsupported``
    and the filters ``sources``, ``page_from``, ``page_to``, as in ``POST /v1/query``.
    """

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        return _known_fields(value, cls, IGNORED_FIELDS)

    model: str = Field(pattern=f"{ADAPTER_REF}", description="'base', NAME or NAME@vN (GET /v1/models lists them).")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request.")
    k: int | None = Field(None, ge=K_MIN, le=K_MAX, description="Passages to retrieve [default: 5].")
    strict: bool = Field(False, description="Refuse rather than answer with an unsupported sentence.")
    unsupported: Literal["drop", "flag"] = Field("drop", description="Drop unsupported sentences, or flag them.")

    # Tool calls and structured output would be ignored silently, and an agent would wait for them.
    tools: list[Any] | None = Field(None, description="Not supported: absent or empty.")
    functions: list[Any] | None = Field(None, description="Not supported: absent or empty.")
    response_format: ResponseFormat | None = None

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("tool calls are not supported: the server answers from its documents only")
        return value

    @model_validator(mode="after")
    def _question(self) -> ChatRequest:
        question = self.question
        if not question.strip():
            raise ValueError("no user message with text: the last user message is the question")
        if len(question) > MAX_TEXT:
            raise ValueError(f"the last user message has {len(question)} characters; the limit is {MAX_TEXT}")
        return self

    @property
    def question(self) -> str:
        users = [m for m in self.messages if m.role == "user"]
        return users[-1].text if users else ""

    def options(self, adapter: str) -> AskOptions:
        """How ``Pipeline.ask`` and ``Pipeline.ask_stream`` are to answer this request."""
        return AskOptions(k=self.k, adapter=adapter, allow_path=False, sources=self.sources, pages=self.pages,
                          strict=self.strict, unsupported=self.unsupported,
                          max_new_tokens=self.max_completion_tokens or self.max_tokens)


@openai_router.get("/models", responses=ERRORS)
def list_models(pipeline: PipelineDep) -> dict:
    """``base``, every adapter as ``NAME`` (its active version) and every version as ``NAME@vN``.

    Each entry's ``adapter`` says which version it answers with now (null for ``base``).
    """
    models = [_model(BASE_MODEL, 0, None)]
    versions = pipeline.adapters.versions()
    for name in dict.fromkeys(v.name for v in versions):
        active = pipeline.adapters.active(name)
        if active is not None:
            models.append(_model(name, _created(active), active.ref))
        models += [_model(v.ref, _created(v), v.ref) for v in versions if v.name == name]
    return {"object": "list", "data": models}


@openai_router.post("/chat/completions", responses=CHAT_RESPONSES)
async def chat_completions(body: ChatRequest, pipeline: PipelineDep, request: Request) -> Any:
    """Answer the last user message; with ``stream`` as server-sent ``chat.completion.chunk`` events.

    A client that goes away stops its generation at the next token (``serve.streams``).
    """
    version = await run_in_threadpool(pipeline.adapters.resolve, _adapter(pipeline, body.model), allow_path=False)
    # The version resolved once: an activation during the request changes neither answer nor label.
    adapter, model = (version.ref, version.ref) if version is not None else ("none", BASE_MODEL)
    reply = _Reply(model, lambda answer: _usage(pipeline, version, body.question, answer))
    cancel = threading.Event()
    options = body.options(adapter)
    if not body.stream:
        answer = await run_watched(request, cancel, pipeline.ask, body.question, options, cancel=cancel)
        return reply.completion(answer)

    def start() -> tuple[Iterator[tuple[str, Any]], tuple[str, Any] | None]:
        # The first event is pulled before the response starts, so that an error before any
        # text is a plain JSON error response.
        events = pipeline.ask_stream(body.question, options, cancel=cancel)
        return events, next(events, None)  # None: cancelled before the first token

    events, first = await run_watched(request, cancel, start)
    if first is None:  # the client is gone; nobody reads this
        return Response(status_code=499)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return EventStream(reply.chunks(first, events, include_usage), cancel)


class _Reply:
    """Builds the completion object, or the chunk stream, for one request."""

    def __init__(self, model: str, usage: Callable[[Answer], dict[str, int]]) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.usage = usage

    def completion(self, answer: Answer) -> dict:
        message = {"role": "assistant", "content": answer.answer}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": self.usage(answer),
            **_extras(answer),
        }

    def chunks(self, first: tuple[str, Any], events: Iterator[tuple[str, Any]], include_usage: bool) -> Iterator[str]:
        usage: dict = {"usage": None} if include_usage else {}
        yield self._chunk({"role": "assistant", "content": ""}, usage)
        streamed: list[str] = []
        try:
            for kind, value in _chain(first, events):
                if kind == "token":
                    streamed.append(value)
                    yield self._chunk({"content": value}, usage)
                elif kind == "answer":
                    yield from self._finish(value, "".join(streamed), usage, include_usage)
        except HybridError as exc:
            # Headers are gone: the error travels as an event, which OpenAI clients raise.
            yield _sse({"error": {"code": exc.code, "message": str(exc)}})
        except Exception:
            logger.exception("unexpected error while streaming a chat completion")
            yield _sse({"error": {"code": "internal_error", "message": "internal error; the server log has the details"}})
        finally:
            events.close()
        yield "data: [DONE]\n\n"

    def _finish(self, answer: Answer, streamed: str, usage: dict, include_usage: bool) -> Iterator[str]:
        extras = _extras(answer)
        if answer.answer.startswith(streamed):
            rest = answer.answer[len(streamed) :]
            if rest:
                yield self._chunk({"content": rest}, usage)
        else:
            # Citing rewrote what was streamed (unsupported sentences dropped, sources renumbered,
            # or a quote from the sources instead): the final text travels with the citations.
            extras["answer"] = answer.answer
        yield self._chunk({}, usage, finish_reason="stop", **extras)
        if include_usage:
            yield _sse({**self._head(), "choices": [], "usage": self.usage(answer)})

    def _head(self) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}

    def _chunk(self, delta: dict, usage: dict, finish_reason: str | None = None, **extras: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _sse({**self._head(), "choices": [choice], **usage, **extras})


def _chain(first: tuple[str, Any], rest: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    yield first
    yield from rest


def _adapter(pipeline: Pipeline, model: str) -> str:
    """The adapter reference for ``model``; NotFoundError naming the models that exist."""
    if model == BASE_MODEL:
        return "none"
    names = pipeline.adapters.names()
    if model.split("@", 1)[0] not in names:
        listed = ", ".join([BASE_MODEL, *names])
        raise NotFoundError(f"no model {model!r}; the models are {listed} (GET /v1/models lists every version)")
    return model


def _usage(pipeline: Pipeline, version: Any, question: str, answer: Answer) -> dict[str, int]:
    """Tokens in and out of the model that answered; 0 and 0 for a refusal, which runs no model.

    The generator's own counts when the answer carries them (``Answer.prompt_tokens`` and
    ``completion_tokens``); else (a streamed reply) counted here with its tokenizer: the question
    (not the passages and instructions the prompt adds, which only the pipeline sees) and the
    answer's text.
    """
    prompt = getattr(answer, "prompt_tokens", None)
    completion = getattr(answer, "completion_tokens", None)
    if prompt is None or completion is None:
        if answer.route == "refuse":
            prompt = completion = 0
        else:
            generator = pipeline.generator(version)
            prompt, completion = generator.count_tokens(question), generator.count_tokens(answer.answer)
    return {"prompt_tokens": int(prompt), "completion_tokens": int(completion), "total_tokens": int(prompt) + int(completion)}


def _extras(answer: Answer) -> dict:
    """The fields of ``POST /v1/query`` that OpenAI's reply has no place for."""
    body = answer.to_dict()
    return {key: body[key] for key in EXTRA_FIELDS if key in body}


def _model(model_id: str, created: int, adapter: str | None) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "hybrid", "adapter": adapter}


def _created(version: Any) -> int:
    """Seconds since the epoch at which the version was trained (0 when meta.json lacks it)."""
    try:
        return int(datetime.fromisoformat(version.meta.created or "").timestamp())
    except (KeyError, TypeError, ValueError):
        return 0


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"
