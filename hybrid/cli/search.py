"""``hybrid search QUERY``: the passages most similar to a query, with file and page."""

from __future__ import annotations

from pathlib import Path

import click

from hybrid.cli._common import allow_download_option, emit, guarded, index_option, json_option, k_option, pages_option, settings_from, source_option


@click.command()
@click.argument("query")
@index_option
@k_option
@source_option
@pages_option
@allow_download_option
@json_option
@guarded
def search(
    query: str,
    index: str | None,
    k: int | None,
    sources: tuple[str, ...],
    pages: tuple[int | None, int | None] | None,
    allow_download: bool | None,
    as_json: bool,
) -> None:
    """Show the passages that best match QUERY."""
    from hybrid.pipeline import Pipeline

    settings = settings_from(index=index, allow_download=allow_download)
    hits = Pipeline(settings).search(query, k=k, sources=sources or None, pages=pages)
    payload = {"query": query, "hits": [h.to_dict() for h in hits]}
    filtered = bool(sources or pages)
    emit(payload, as_json, lambda p: _human(p, filtered))


def _human(payload: dict, filtered: bool = False) -> str:
    if not payload["hits"]:
        return "no passages match the --source/--pages filter" if filtered else "no passages (is the index empty?)"
    blocks = []
    for n, hit in enumerate(payload["hits"], start=1):
        text = " ".join(hit["text"].split())
        blocks.append(f"{n}. {Path(hit['source']).name}, page {hit['page']}  (score {hit['score']:.3f})\n   {text[:240]}")
    return "\n".join(blocks)
