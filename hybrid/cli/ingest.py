"""``hybrid ingest PATH...``: PDFs (files or folders) into the index, incrementally."""

from __future__ import annotations

import sys
from pathlib import Path

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
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar with pages/s and ETA [default: on a terminal]."
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
    progress: bool | None,
    allow_download: bool | None,
    as_json: bool,
) -> int:
    """Ingest PDF files or folders (recursively). Unchanged files are skipped."""
    from hybrid.pipeline import Pipeline

    # A partial [ingest] table: merged over hybrid.toml and HYBRID_INGEST__* by pydantic-settings.
    settings = settings_from(
        index=index, embedder=embedder, allow_download=allow_download, ingest={"ocr": True} if ocr else None
    )
    log(f"ingesting into {settings.index_description}")
    show_bar = sys.stderr.isatty() if progress is None else progress
    with ProgressBar(enabled=show_bar) as bar:
        report = Pipeline(settings).ingest(list(paths), prune=prune, progress=bar.write, on_progress=bar.update)
    payload = report.to_dict()
    emit(payload, as_json, _human)
    stored = report.files_added + report.files_updated + report.files_unchanged + report.files_removed
    if report.files_failed:
        return PARTIAL if stored else FAILURE
    return OK


class ProgressBar:
    """A tqdm bar on stderr counting pages, with pages/s and an ETA; log lines print above it.

    The total is an estimate until every file is read: pages so far, scaled by the bytes still
    to read (`IngestProgress.pages_estimated`).
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=None, unit="page", file=sys.stderr, dynamic_ncols=True, leave=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def write(self, line: str) -> None:
        if self._bar is None:
            log(line)
        else:
            self._bar.write(line, file=sys.stderr)

    def update(self, p) -> None:  # p: ingest.IngestProgress
        if self._bar is None:
            return
        if p.bytes_done and p.bytes_total:
            self._bar.total = p.pages_estimated
        self._bar.set_postfix_str(f"file {p.files_done}/{p.files_total}", refresh=False)
        self._bar.update(p.pages_done - self._bar.n)
        if p.files_done == p.files_total:
            self._bar.refresh()  # update() redraws at most every 0.1 s; show the final state


# File names listed by name in the summary up to this many per kind; beyond, only counted.
_NAMED = 20


def _human(r: dict) -> str:
    lines = [
        f"{r['files_added']} added, {r['files_updated']} updated, {r['files_unchanged']} unchanged, "
        f"{r['files_removed']} removed, {len(r['files_failed'])} failed; "
        f"{r['pages']} pages, {r['chunks']} chunks in {r['seconds']:.1f} s"
    ]
    for kind in ("added", "updated", "removed"):
        names = [Path(p).name for p in r.get(kind, [])]
        if names:
            more = f" and {len(names) - _NAMED} more" if len(names) > _NAMED else ""
            lines.append(f"  {kind}: {', '.join(names[:_NAMED])}{more}")
    lines += [f"  failed: {f['path']}: {f['error']}" for f in r["files_failed"]]
    lines += [f"  warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)
