"""Records the hybrid core returns: an answer, the citations that back it, the check of each sentence.

Each is defined once, here, as a pydantic model: the Python API returns it, ``hybrid ask
--json`` prints ``to_dict()``, ``POST /v1/query`` declares it as its ``response_model`` (so the
HTTP reference is generated from these very fields and descriptions), and the stream's last
event carries the same JSON. A search hit is ``ingest.Hit`` (the leaf's own dataclass), used
the same way by ``hybrid search --json`` and ``POST /v1/search``.

``AskOptions`` goes the other way: how to answer one question, as ``Pipeline.ask`` takes it, the
CLI and the HTTP routes build it, each of its fields checked here against ``hybrid.limits``.

Records are built with keywords; an unknown field is an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from hybrid.errors import BadRequestError
from hybrid.limits import K_MAX, K_MIN, MAX_NEW_TOKENS, MAX_PAGE

Route = Literal["rag", "style", "refuse"]
Unsupported = Literal["drop", "flag"]
Page = Annotated[int, Field(ge=1, le=MAX_PAGE, strict=True)]

# Every field is in the JSON these records make, defaults included: the schema says so.
_RECORD = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class Citation(BaseModel):
    """A source an answer cites as `[n]`: the chunk, its file and page, and a quote from it."""

    model_config = ConfigDict(**_RECORD, frozen=True)

    n: int = Field(description="The number the answer cites it by, [n].")
    source: str = Field(description="The document's path as ingested.")
    page: int = Field(description="The page, 1-based as a PDF viewer numbers pages.")
    chunk_id: str = Field(description="The passage cited.")
    quote: str = Field(description="Words of the passage, verbatim, that back the sentences citing it.")


class SentenceCheck(BaseModel):
    """One answer sentence and how well the passages it cites support it."""

    model_config = ConfigDict(**_RECORD, frozen=True)

    text: str = Field(description="The sentence as in the answer, or as generated when it was dropped.")
    cited: tuple[int, ...] = Field(description="The citation numbers [n] it carries.")
    support: float = Field(description="Share of its content words in the best cited passage; 0 when a number is missing there.")
    supported: bool = Field(description="Whether it passes the check (always true for a sentence that makes no claim).")
    claim: bool = Field(description="False for sentences too short to claim anything ('Yes.'), which need no support.")
    kept: bool = Field(True, description="Whether it is in the answer (unsupported sentences are dropped by default).")

    @field_serializer("support")
    def _rounded(self, support: float) -> float:
        return round(support, 3)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Answer(BaseModel):
    """The answer to one question: `hybrid ask --json`, `POST /v1/query` and the stream's last event."""

    model_config = _RECORD

    answer: str = Field(description="The answer's text, citation markers [n] included.")
    citations: list[Citation] = Field(description="The sources the answer cites, by their number [n].")
    route: Route = Field(description="rag (answered from retrieved passages), style (a rewrite of text the user "
                                     "supplied, no retrieval) or refuse.")
    grounded: bool = Field(description="Every sentence left in the answer passed the grounding check (and, on the "
                                       "rag route, something is cited).")
    adapter: str | None = Field(description="The adapter version that wrote it (NAME@vN), or null for the base model.")
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per step (retrieve_ms, generate_ms, ...).")
    reason: str = Field("", description="Why the request took this route (a refusal says what was missing).")
    sentences: list[SentenceCheck] = Field(default_factory=list, description="The grounding check of each generated "
                                           "sentence, dropped ones included.")
    # The generator's token counts, when it reported them: not part of the JSON (the
    # OpenAI-compatible route reports them as its `usage`).
    prompt_tokens: int | None = Field(None, exclude=True)
    completion_tokens: int | None = Field(None, exclude=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class AskOptions(BaseModel):
    """How to answer one question: where to retrieve from, which adapter writes, and what becomes
    of a sentence the passages do not support. Unset fields take the settings' defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int | None = Field(None, ge=K_MIN, le=K_MAX, strict=True, description="Passages to retrieve [default: the k setting].")
    adapter: str | None = Field(None, description="NAME, NAME@vN or 'none' [default: the active adapter, if one].")
    allow_path: bool = Field(True, description="Whether adapter may be a folder (False for HTTP requests).")
    sources: tuple[str, ...] | None = Field(None, description="Only documents matching one of these paths, file names or globs.")
    pages: tuple[Page | None, Page | None] | None = Field(None, description="Only pages in this (first, last) range; "
                                                                             "None leaves an end open.")
    strict: bool = Field(False, description="Refuse, with the reason, rather than return any unsupported sentence.")
    unsupported: Unsupported = Field("drop", description="'drop' unsupported sentences from the answer, or 'flag' them "
                                                         "(grounded is then false).")
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS, strict=True,
                                       description="The longest reply, in tokens [default: the max_new_tokens setting].")

    @classmethod
    def of(cls, options: AskOptions | None = None, **fields: Any) -> AskOptions:
        """``options`` (or the defaults) with ``fields`` changed, checked.

        Raises:
            BadRequestError: an unknown field or a value out of range, each named.
        """
        values = {**(options.model_dump(exclude_unset=True) if options is not None else {}), **fields}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise BadRequestError(_problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    """``"k: Input should be less than or equal to 50 (got 80)"``, one per bad field."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "options"
        got = f" (got {error['input']!r})" if error["type"] != "extra_forbidden" else ""
        problems.append(f"{where}: {error['msg']}{got}")
    return "; ".join(problems)
