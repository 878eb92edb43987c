"""Routes: health, search and query. Handlers are plain ``def``: FastAPI runs them in its
thread pool, so CPU-bound retrieval and generation never block the event loop."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from hybrid import Answer, HybridError, Pipeline
from serve.auth import require_query_key
from serve.deps import get_pipeline
from serve.schemas import ErrorResponse, QueryRequest, SearchRequest, SearchResponse
from serve.streams import EventStream, run_watched

logger = logging.getLogger("hybrid.serve")
router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_query_key)])
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 422, 503)}


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 ``ok`` once the models and the index are loaded; 503 ``loading`` before, and 503
    ``degraded`` while a reply has gone longer than the ``stall_timeout`` setting without a new
    token (a supervisor should restart the server then).

    ``fast_decode`` tells, per loaded generator (base model, or base model + adapter folder),
    whether greedy answers use the compiled speculative path yet (see `tune.fastpath`);
    ``engine`` is the serving engine's URL when answers are generated there (``engine.url``).
    """
    if not getattr(request.app.state, "ready", False):
        return JSONResponse({"status": "loading"}, status_code=503)
    pipeline = request.app.state.pipeline
    body = {"status": "ok", "fast_decode": pipeline.generators.fast_status()}
    if pipeline.settings.engine.url:
        body["engine"] = pipeline.settings.engine.url
    stalled, bound = pipeline.generators.stalled_seconds(), request.app.state.settings.stall_timeout
    if stalled > bound:
        reason = f"a reply has made no progress for {stalled:.0f} s (stall_timeout {bound:g} s)"
        return JSONResponse({**body, "status": "degraded", "reason": reason}, status_code=503)
    return JSONResponse(body)


@v1.post("/search", response_model=SearchResponse, responses=ERRORS)
def search(body: SearchRequest, pipeline: PipelineDep) -> dict:
    """The passages most similar to the query (same JSON as ``hybrid search --json``)."""
    hits = pipeline.search(body.query, k=body.k, sources=body.sources, pages=body.pages)
    return {"query": body.query, "hits": [h.to_dict() for h in hits]}


QUERY_RESPONSES = {
    **ERRORS,
    200: {
        "description": "The answer; with \"stream\": true, server-sent events ending in the same JSON.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}


@v1.post("/query", response_model=Answer, responses=QUERY_RESPONSES)
async def query(body: QueryRequest, pipeline: PipelineDep, request: Request) -> Any:
    """A cited answer, a rewrite of text the request supplies, or a refusal when the documents
    do not cover the question.

    With ``"stream": true`` the reply is ``text/event-stream``: ``data: {"token": str}`` as the
    model generates, then ``data: {"answer": {...}}`` (the non-streaming JSON, after the
    grounding check) and ``data: [DONE]``. A bad request is still a 4xx JSON error: the request
    is checked, and retrieval run, before the stream starts. A client that goes away stops its
    generation at the next token, streamed or not (``serve.streams``).
    """
    cancel = threading.Event()
    options = body.options()
    if body.stream:
        events = await run_watched(request, cancel, pipeline.ask_stream, body.question, options, cancel=cancel)
        return EventStream(_query_events(events), cancel)
    answer = await run_watched(request, cancel, pipeline.ask, body.question, options, cancel=cancel)
    request.state.completion_tokens = answer.completion_tokens  # for /metrics (serve.metrics)
    return answer


def _query_events(events: Iterator[tuple[str, Any]]) -> Iterator[str]:
    """Server-sent events for ``Pipeline.ask_stream``; a failure mid-stream ends it with an error event.

    The status line (200) is already sent by then, so the error travels as an event with the
    same ``{"error": {"code", "message"}}`` body as a JSON error, and no traceback.
    """
    try:
        for kind, value in events:
            payload = {"token": value} if kind == "token" else {"answer": value.to_dict()}
            yield f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"
    except HybridError as exc:
        yield f"data: {json.dumps({'error': {'code': exc.code, 'message': str(exc)}})}\n\n"
    except Exception:
        logger.exception("query stream failed")
        error = {"code": "internal_error", "message": "internal error; the server log has the details"}
        yield f"data: {json.dumps({'error': error})}\n\n"
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # the reader went away: stop generating
