"""What every command shares: settings from flags, one JSON document or human text, exit codes."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hybrid.errors import HybridError
from hybrid.limits import K_MAX, K_MIN

if TYPE_CHECKING:
    from hybrid.config import Settings

# Exit codes of the contract.
OK, FAILURE, USAGE, PARTIAL = 0, 1, 2, 3

json_option = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
index_option = click.option(
    "--index",
    metavar="DIR|URL",
    default=None,
    help="Index directory, or a PostgreSQL URL (postgresql://USER@HOST/DB) shared by many servers "
    "[default: the store setting, else $HYBRID_HOME/index].",
)
allow_download_option = click.option(
    "--allow-download", is_flag=True, default=None, help="Let model loading reach a model hub (default: offline)."
)
engine_option = click.option(
    "--engine",
    "engine",
    metavar="URL",
    default=None,
    help="Generate on this OpenAI-compatible engine (llama-server, vLLM, TGI, Ollama), e.g. http://127.0.0.1:8080/v1 "
    "[default: the engine.url setting, else in this process].",
)
k_option = click.option("-k", "k", type=click.IntRange(K_MIN, K_MAX), default=None, help="Passages to retrieve [default: 5].")
def _absolute_paths(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    # Sources are stored as absolute paths: a relative path that exists here is made absolute.
    return tuple(str(Path(v).resolve()) if os.sep in v and Path(v).exists() else v for v in values)


source_option = click.option(
    "--source",
    "sources",
    multiple=True,
    callback=_absolute_paths,
    help="Only documents matching this path, file name or glob ('*2023 Q3*'); repeatable.",
)


class PageRange(click.ParamType):
    """``5``, ``3-7``, ``3-`` or ``-7``: a 1-based, inclusive page range."""

    name = "FIRST-LAST"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int | None, int | None]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        first, sep, last = text.partition("-")
        try:
            bounds = (int(first) if first else None, (int(last) if last else None) if sep else int(first))
        except ValueError:
            self.fail(f"{value!r} is not a page range; use 5, 3-7, 3- or -7", param, ctx)
        if bounds == (None, None) or any(b is not None and b < 1 for b in bounds):
            self.fail(f"{value!r} is not a page range; pages are numbered from 1", param, ctx)
        if None not in bounds and bounds[0] > bounds[1]:
            self.fail(f"the page range {value!r} is empty", param, ctx)
        return bounds


pages_option = click.option("--pages", type=PageRange(), default=None, help="Only these pages: 5, 3-7, 3- or -7.")


def settings_from(**flags: Any) -> Settings:
    """Settings from config files and environment, overridden by the flags that were given."""
    from hybrid.config import load_settings  # pydantic-settings: not for `--help`

    engine = flags.pop("engine", None)
    if engine is not None:  # merged into the [engine] table of the other sources
        flags["engine"] = {"url": engine}
    return load_settings(**flags)


def log(message: str) -> None:
    """Progress and logs go to stderr, so stdout stays one JSON document under --json."""
    click.echo(message, err=True)


def emit(payload: dict, as_json: bool, human: Callable[[dict], str]) -> None:
    if as_json:
        click.echo(json.dumps(_finite(payload), ensure_ascii=False))
    else:
        click.echo(human(payload))


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: report them as null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def guarded(command: Callable[..., int | None]) -> Callable[..., None]:
    """Run a command body; turn expected errors into one clear line and the contract's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        as_json = kwargs.get("as_json", False)
        try:
            code = command(*args, **kwargs) or OK
        except HybridError as exc:  # its class says the exit code (hybrid.errors)
            _fail(exc, as_json)
            code = exc.exit_code
        except KeyboardInterrupt:
            log("interrupted")
            code = FAILURE
        except Exception as exc:  # a bug or an environment failure: one line, never a traceback
            error = HybridError(f"unexpected {type(exc).__name__}: {exc}")
            error.code = "internal_error"
            _fail(error, as_json)
            code = FAILURE
        sys.exit(code)

    return wrapper


def _fail(exc: HybridError, as_json: bool) -> None:
    log(f"error: {exc}")
    if as_json:
        click.echo(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
