"""``hybrid ingest PATH...``: PDFs (files or folders) into the index, incrementally."""

from __future__ import annotations

import click

from hybrid.cli._common import FAILURE, OK, PARTIAL, allow_download_option, emit, guarded, index_option, json_option, log, settings_from


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@index_option
@click.option("--embedder", default=None, help="Embedding model for a new index [default: all-MiniLM-L6-v2].")
@click.option("--prune", is_flag=True, help="Remove indexed documents whose file no longer exists.")
@click.option(
    "--ocr", is_flag=True, default=None, help="Read scanned pages (images, no text layer) with the local tesseract executable."
)
@allow_download_option
@json_option
@guarded
def ingest(
    paths: tuple[str, ...],
    index: str | None,
    embedder: str | None,
    prune: bool,
    ocr: bool | None,
    allow_download: bool | None,
    as_json: bool,
) -> int:
    """Ingest PDF files or folders (recursively). Unchanged files are skipped."""
    from hybrid.pipeline import Pipeline

    # A partial [ingest] table: merged over hybrid.toml and HYBRID_INGEST__* by pydantic-settings.
    settings = settings_from(
        index=index, embedder=embedder, allow_download=allow_download, ingest={"ocr": True} if ocr else None
    )
    log(f"ingesting into {settings.index_dir}")
    report = Pipeline(settings).ingest(list(paths), prune=prune, progress=log)
    payload = report.to_dict()
    emit(payload, as_json, _human)
    stored = report.files_added + report.files_updated + report.files_unchanged + report.files_removed
    if report.files_failed:
        return PARTIAL if stored else FAILURE
    return OK


def _human(r: dict) -> str:
    lines = [
        f"{r['files_added']} added, {r['files_updated']} updated, {r['files_unchanged']} unchanged, "
        f"{r['files_removed']} removed, {len(r['files_failed'])} failed; "
        f"{r['pages']} pages, {r['chunks']} chunks in {r['seconds']:.1f} s"
    ]
    lines += [f"  failed: {f['path']}: {f['error']}" for f in r["files_failed"]]
    lines += [f"  warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)
