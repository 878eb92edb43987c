"""Request and response bodies of the HTTP API (the same JSON as the CLI's ``--json``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 4000
ADAPTER_REF = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(@v[0-9]{1,6})?$"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_TEXT, description="Text to search for.")
    k: int | None = Field(None, ge=1, le=50, description="Passages to return [default: 5].")


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_TEXT, description="The question to answer.")
    k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve [default: 5].")
    # Names only: a request never names a file-system path.
    adapter: str | None = Field(
        None, pattern=ADAPTER_REF, description="NAME, NAME@vN or 'none' [default: the server's adapter]."
    )


class HitOut(BaseModel):
    source: str
    page: int
    chunk_id: str
    score: float
    text: str


class SearchResponse(BaseModel):
    query: str
    hits: list[HitOut]


class CitationOut(BaseModel):
    n: int
    source: str
    page: int
    chunk_id: str
    quote: str


class QueryResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    route: Literal["rag", "style", "refuse"]
    grounded: bool
    adapter: str | None
    timings: dict[str, float]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
