"""``hybrid docs list`` and ``hybrid docs remove PATH...``: what the index holds."""

from __future__ import annotations

import click

from hybrid.cli._common import FAILURE, OK, emit, guarded, index_option, json_option, settings_from


@click.group()
def docs() -> None:
    """List or remove the documents in the index."""


@docs.command("list")
@index_option
@json_option
@guarded
def list_documents(index: str | None, as_json: bool) -> None:
    """List the indexed documents with their pages and chunks."""
    from hybrid.pipeline import Pipeline

    documents = Pipeline(settings_from(index=index)).documents()
    emit({"documents": documents}, as_json, _human_list)


@docs.command("remove")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@index_option
@json_option
@guarded
def remove(paths: tuple[str, ...], index: str | None, as_json: bool) -> int:
    """Remove documents (files, or every document below a folder); the files may be gone."""
    from hybrid.pipeline import Pipeline

    removed = Pipeline(settings_from(index=index)).remove_documents(list(paths))
    emit({"removed": removed}, as_json, lambda p: "\n".join(f"removed {s}" for s in p["removed"]) or "nothing matched")
    return OK if removed else FAILURE


def _human_list(payload: dict) -> str:
    documents = payload["documents"]
    lines = [f"{d['pages']:>5} pages {d['chunks']:>6} chunks  {d['source']}" for d in documents]
    return "\n".join([*lines, f"{len(documents)} documents"])
