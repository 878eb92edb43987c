"""Routes: health, search and query. Handlers are plain ``def``: FastAPI runs them in its
thread pool, so CPU-bound retrieval and generation never block the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from hybrid import Pipeline
from serve.auth import require_query_key
from serve.deps import get_pipeline
from serve.schemas import ErrorResponse, QueryRequest, QueryResponse, SearchRequest, SearchResponse

router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_query_key)])
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 422, 503)}


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 once the models and the index are loaded, 503 before."""
    if getattr(request.app.state, "ready", False):
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "loading"}, status_code=503)


@v1.post("/search", response_model=SearchResponse, responses=ERRORS)
def search(body: SearchRequest, pipeline: PipelineDep) -> dict:
    """The passages most similar to the query (same JSON as ``hybrid search --json``)."""
    hits = pipeline.search(body.query, k=body.k, sources=body.sources, pages=body.pages)
    return {"query": body.query, "hits": [h.to_dict() for h in hits]}


@v1.post("/query", response_model=QueryResponse, responses=ERRORS)
def query(body: QueryRequest, pipeline: PipelineDep) -> dict:
    """A cited answer, or a refusal when the documents do not cover the question."""
    answer = pipeline.ask(
        body.question, k=body.k, adapter=body.adapter, allow_path=False, sources=body.sources, pages=body.pages
    )
    return answer.to_dict()
