"""Error codes are declared next to each error, so renaming a class changes no public code."""

from __future__ import annotations

import pytest

import ingest
import ingest.ocr  # noqa: F401  (OcrError is defined there)
import tune
from hybrid.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnavailableError,
    from_leaf,
    leaf_errors,
)
from ingest.errors import IngestError
from tune.errors import TuneError

# The public codes (HTTP error.code, --json) as they were when they were derived from the class
# names: a change here is a change of the contract.
CODES = {
    "IngestError": ("ingest", BadRequestError),
    "PdfReadFailure": ("pdf_read", BadRequestError),
    "IndexNotFoundError": ("not_found", NotFoundError),
    "IndexMismatchError": ("index_mismatch", BadRequestError),
    "IngestConfigError": ("ingest_config", BadRequestError),
    "IndexBusyError": ("conflict", ConflictError),
    "SearchFilterError": ("search_filter", BadRequestError),
    "IndexUnavailableError": ("index_unavailable", UnavailableError),
    "OcrError": ("ocr", BadRequestError),
    "TuneError": ("tune", BadRequestError),
    "DataError": ("data", BadRequestError),
    "DatasetError": ("dataset", BadRequestError),
    "ModelNotFoundError": ("not_found", NotFoundError),
    "AdapterNotFoundError": ("not_found", NotFoundError),
    "InvalidAdapterNameError": ("invalid_adapter_name", BadRequestError),
    "ExportError": ("export", BadRequestError),
    "TuneConfigError": ("tune_config", BadRequestError),
    "TrainingInterrupted": ("training_interrupted", BadRequestError),
}


def _subclasses(base: type) -> list[type]:
    found = [base]
    for sub in base.__subclasses__():
        found += _subclasses(sub)
    return found


LEAF_ERRORS = [cls for cls in _subclasses(IngestError) + _subclasses(TuneError) if cls.__module__.split(".")[0] in ("ingest", "tune")]


def test_the_table_names_every_leaf_error() -> None:
    assert {cls.__name__ for cls in LEAF_ERRORS} == set(CODES)


def _instance(cls: type) -> Exception:
    if cls.__name__ == "PdfReadFailure":
        return cls("a.pdf", "not a PDF")
    if cls.__name__ == "DatasetError":
        return cls("bad examples", report=None)
    if cls.__name__ == "TuneConfigError":
        return cls(["epochs must be positive"])
    return cls("what went wrong")


@pytest.mark.parametrize("cls", LEAF_ERRORS, ids=lambda c: c.__name__)
def test_every_leaf_error_declares_its_code_and_gets_its_status(cls: type) -> None:
    assert "code" in cls.__dict__, f"{cls.__name__} declares no code of its own"
    code, status = CODES[cls.__name__]
    assert cls.code == code
    error = from_leaf(_instance(cls))
    assert (error.code, type(error)) == (code, status)
    assert str(error) == str(_instance(cls))


def test_a_renamed_class_keeps_its_code() -> None:
    class RenamedIndexMismatch(ingest.IndexMismatchError):
        pass

    with pytest.raises(BadRequestError) as caught, leaf_errors():
        raise RenamedIndexMismatch("built with another embedder")
    assert caught.value.code == "index_mismatch" and caught.value.status == 400


def test_leaf_errors_maps_not_found_and_busy() -> None:
    with pytest.raises(NotFoundError) as caught, leaf_errors():
        raise tune.AdapterNotFoundError("no adapter named 'x'")
    assert (caught.value.code, caught.value.status) == ("not_found", 404)
    with pytest.raises(ConflictError) as caught, leaf_errors():
        raise ingest.IndexBusyError("another ingest is running")
    assert (caught.value.code, caught.value.status) == ("conflict", 409)


# The one table: each core error's public code, HTTP status and CLI exit code (CONTRACT.md: 1 a
# failure, 2 a usage error).
FACES = {
    "HybridError": ("hybrid_error", 500, 1),
    "ConfigError": ("invalid_config", 500, 2),
    "BadRequestError": ("bad_request", 400, 1),
    "NotFoundError": ("not_found", 404, 1),
    "ConflictError": ("conflict", 409, 1),
    "NotReadyError": ("not_ready", 503, 1),
    "UnavailableError": ("unavailable", 503, 1),
}


def test_each_core_error_declares_its_code_status_and_exit_code() -> None:
    from hybrid.errors import HybridError

    core = [cls for cls in _subclasses(HybridError) if cls.__module__ == "hybrid.errors"]
    assert {cls.__name__: (cls.code, cls.status, cls.exit_code) for cls in core} == FACES


@pytest.mark.parametrize(("error", "exit_code"), [("ConfigError", 2), ("NotFoundError", 1)])
def test_the_cli_exits_with_the_errors_exit_code(error: str, exit_code: int) -> None:
    import click
    from click.testing import CliRunner

    import hybrid.errors
    from hybrid.cli._common import guarded

    @click.command()
    @click.option("--json", "as_json", is_flag=True)
    @guarded
    def failing(as_json: bool) -> None:
        raise getattr(hybrid.errors, error)("what went wrong")

    result = CliRunner().invoke(failing, ["--json"])
    assert result.exit_code == exit_code
    assert result.stdout.strip() == f'{{"error": {{"code": "{FACES[error][0]}", "message": "what went wrong"}}}}'
