"""Errors raised by the tune package.

Library code raises these; the CLI and the HTTP server translate them into one clear line or a
JSON error. Every message says what is wrong, what was found and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: check.py imports this module, not the reverse
    from tune.check import CheckReport


class TuneError(Exception):
    """Base class of every error the tune package raises on purpose."""

    code = "tune"


class DataError(TuneError):
    """An example file cannot be read at all (missing, a directory, not UTF-8 CSV).

    Single bad lines are not errors: they become `Problem` records.
    """

    code = "data"


class DatasetError(TuneError):
    """The examples have problems and training was not forced.

    Attributes:
        report: the `CheckReport` listing every problem with its file and line.
    """

    code = "dataset"

    def __init__(self, message: str, report: CheckReport) -> None:
        super().__init__(message)
        self.report = report


class ModelNotFoundError(TuneError):
    """A base model spec names nothing usable on this machine (offline, or a bad directory)."""

    code = "not_found"


class AdapterNotFoundError(TuneError):
    """An adapter reference (NAME, NAME@vN, a directory) names no adapter."""

    code = "not_found"


class InvalidAdapterNameError(TuneError):
    """An adapter name has characters that could reach outside the registry (see `ADAPTER_NAME_RE`)."""

    code = "invalid_adapter_name"


class ExportError(TuneError):
    """An adapter cannot be exported: the target directory is not empty, or no base model is recorded."""

    code = "export"


class TuneConfigError(TuneError):
    """A `TuneConfig` has one or more invalid fields.

    Attributes:
        problems: one line per invalid field (the message lists them all too).
    """

    code = "tune_config"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid tune config: " + "; ".join(problems))
        self.problems = problems


class TrainingInterrupted(TuneError):
    """Training was interrupted (Ctrl-C) after a checkpoint; ``--resume`` continues it."""

    code = "training_interrupted"
