"""Request bodies of the HTTP API, and the response bodies the core has no record for.

An answer is ``hybrid.Answer`` and a hit ``hybrid.Hit``, the records the Python API returns and
the CLI's ``--json`` prints: they are the response models, not mirrored here.

Every request body follows one policy (``STRICT``): an unknown field is a 422, and types are
strict: ``"5"`` or ``true`` is not a number, ``"yes"`` or ``1`` not a boolean. Every number is
bounded (``hybrid.limits``) before it reaches the index or the model.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hybrid import AskOptions, Hit
from hybrid.limits import K_MAX, K_MIN, MAX_PAGE, MAX_QUESTION_CHARS

MAX_TEXT = MAX_QUESTION_CHARS
STRICT = ConfigDict(extra="forbid", strict=True)
ADAPTER_REF = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(@v[0-9]{1,6})?$"


class Filters(BaseModel):
    """Optional restrictions on which passages may be retrieved."""

    model_config = STRICT

    sources: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only documents matching one of these paths, file names or globs ('*2023 Q3*').",
    )
    page_from: int | None = Field(None, ge=1, le=MAX_PAGE, description="Only pages from this one on (1-based).")
    page_to: int | None = Field(None, ge=1, le=MAX_PAGE, description="Only pages up to this one (inclusive).")

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if self.page_from is not None and self.page_to is not None and self.page_from > self.page_to:
            raise ValueError(f"page_from ({self.page_from}) is after page_to ({self.page_to})")
        return self

    @property
    def pages(self) -> tuple[int | None, int | None] | None:
        return None if self.page_from is None and self.page_to is None else (self.page_from, self.page_to)


class SearchRequest(Filters):
    query: str = Field(min_length=1, max_length=MAX_TEXT, description="Text to search for.")
    k: int | None = Field(None, ge=K_MIN, le=K_MAX, description="Passages to return [default: 5].")


class QueryRequest(Filters):
    question: str = Field(min_length=1, max_length=MAX_TEXT, description="The question to answer.")
    k: int | None = Field(None, ge=K_MIN, le=K_MAX, description="Passages to retrieve [default: 5].")
    # Names only: a request never names a file-system path.
    adapter: str | None = Field(
        None, pattern=ADAPTER_REF, description="NAME, NAME@vN or 'none' [default: the server's adapter]."
    )
    stream: bool = Field(
        False,
        description="Server-sent events: {\"token\"} as they are generated, then {\"answer\"} (this "
        "response's JSON) and [DONE].",
    )
    strict: bool = Field(
        False, description="Refuse (route 'refuse', with the reason) rather than return any unsupported sentence."
    )
    unsupported: Literal["drop", "flag"] = Field(
        "drop", description="Unsupported sentences: 'drop' them from the answer, or 'flag' them (grounded is then false)."
    )

    def options(self) -> AskOptions:
        """How ``Pipeline.ask`` is to answer this request (an adapter by name only, never a path)."""
        return AskOptions(k=self.k, adapter=self.adapter, allow_path=False, sources=self.sources, pages=self.pages,
                          strict=self.strict, unsupported=self.unsupported)


class SearchResponse(BaseModel):
    query: str
    hits: list[Hit]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
