"""``hybrid serve``: the HTTP API (``POST /v1/query`` and friends) on uvicorn."""

from __future__ import annotations

import click

from hybrid.cli._common import USAGE, guarded, index_option, log, settings_from
from hybrid.config import is_loopback


@click.command()
@index_option
@click.option("--adapter", default=None, help="Adapter to answer with [default: active 'house', if any].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without HYBRID_API_KEY.")
@guarded
def serve(index: str | None, adapter: str | None, host: str, port: int, insecure: bool) -> int:
    """Serve the index and the adapter over HTTP."""
    settings = settings_from(index=index, adapter=adapter)
    if not is_loopback(host) and settings.api_key is None and not insecure:
        log(
            f"error: refusing to listen on {host} without keys: set HYBRID_API_KEY (and HYBRID_ADMIN_KEY), "
            "or pass --insecure to accept anyone on the network"
        )
        return USAGE
    import uvicorn

    from serve import create_app

    log(f"loading models, then serving on http://{host}:{port} (index {settings.index_dir})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0
