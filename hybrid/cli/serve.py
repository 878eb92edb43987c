"""``hybrid serve``: the HTTP API (``POST /v1/query`` and friends) on uvicorn."""

from __future__ import annotations

import json

import click

from hybrid.cli._common import allow_download_option, engine_option, guarded, index_option, json_option, log, settings_from
from hybrid.errors import ConfigError


@click.command()
@index_option
@click.option("--adapter", default=None, help="Adapter to answer with [default: active 'house', if any].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without HYBRID_API_KEY (also HYBRID_INSECURE=1).")
@engine_option
@allow_download_option
@json_option
@guarded
def serve(
    index: str | None,
    adapter: str | None,
    host: str,
    port: int,
    insecure: bool,
    engine: str | None,
    allow_download: bool | None,
    as_json: bool,
) -> int:
    """Serve the index and the adapter over HTTP.

    With --json, one line {"status": "ready", "url": ...} is printed on stdout once the models
    are loaded, for scripts that start the server; logs go to stderr.
    """
    from hybrid.config import unsafe_bind

    # Equal keys are refused by the settings themselves, however the server is started.
    settings = settings_from(index=index, adapter=adapter, allow_download=allow_download, insecure=insecure or None, engine=engine)
    refusal = unsafe_bind(settings, host)
    if refusal:
        raise ConfigError(refusal)
    if settings.api_key is not None and settings.admin_key is None:
        log("admin routes are closed (adapter activation, uploads): set HYBRID_ADMIN_KEY to open them")
    from hybrid.pipeline import Pipeline
    from serve import create_app, run

    log(f"loading models (index {settings.index_description})")
    pipeline = Pipeline(settings, serving=True)  # fast_decode "auto": built in the background
    pipeline.load()  # fail here with one clear line (no index, unknown adapter), not in uvicorn
    url = f"http://{host}:{port}"
    log(f"serving on {url}")
    if as_json:
        click.echo(json.dumps({"status": "ready", "url": url}))
    run(create_app(settings, pipeline=pipeline), host, port, log_config=_logs_to_stderr())
    return 0


def _logs_to_stderr() -> dict:
    """uvicorn's logging, with the access log on stderr too: stdout is reserved for --json."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    return config
