"""``hybrid migrate URL``: copy the embedded index into PostgreSQL, the store many servers share."""

from __future__ import annotations

import click

from hybrid.cli._common import OK, emit, guarded, json_option, log, settings_from


@click.command()
@click.argument("target", metavar="URL")
@click.option(
    "--index", type=click.Path(file_okay=False), default=None, help="The embedded index to copy [default: $HYBRID_HOME/index]."
)
@json_option
@guarded
def migrate(target: str, index: str | None, as_json: bool) -> int:
    """Copy the embedded index into the PostgreSQL index at URL (postgresql://USER@HOST/DB).

    The stored chunks and vectors are copied as they are (nothing is embedded again), in one
    transaction; documents already there with the same content are skipped, and nothing is
    removed. Then serve from it with --index URL, or store = "URL" in hybrid.toml.
    """
    from hybrid.pipeline import Pipeline
    from ingest import describe

    settings = settings_from(index=index)  # migrate reads settings.index_dir, whatever store says
    log(f"copying {settings.index_dir} into {describe(target)}")
    report = Pipeline(settings).migrate(target, progress=log)
    emit(report.to_dict(), as_json, _human)
    return OK


def _human(payload: dict) -> str:
    return (
        f"{payload['documents_copied']} documents copied ({payload['chunks_copied']} chunks), "
        f"{payload['documents_unchanged']} already there; {payload['target']} in {payload['seconds']} s"
    )
