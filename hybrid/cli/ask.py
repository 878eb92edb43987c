"""``hybrid ask QUESTION``: a cited answer from the index, in the adapter's house style."""

from __future__ import annotations

from pathlib import Path

import click

from hybrid.cli._common import allow_download_option, emit, guarded, index_option, json_option, k_option, pages_option, settings_from, source_option


@click.command()
@click.argument("question")
@index_option
@click.option("--adapter", default=None, help="NAME, NAME@vN, a directory, or 'none' [default: active 'house', if any].")
@k_option
@source_option
@pages_option
@allow_download_option
@json_option
@guarded
def ask(
    question: str,
    index: str | None,
    adapter: str | None,
    k: int | None,
    sources: tuple[str, ...],
    pages: tuple[int | None, int | None] | None,
    allow_download: bool | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from your documents, citing file and page."""
    from hybrid.pipeline import Pipeline

    pipeline = Pipeline(settings_from(index=index, allow_download=allow_download))
    answer = pipeline.ask(question, k=k, adapter=adapter, sources=sources or None, pages=pages)
    emit(answer.to_dict(), as_json, format_answer)


def format_answer(a: dict) -> str:
    """Human-readable answer: text, numbered citations, then route and timings."""
    lines = [a["answer"], ""]
    for c in a["citations"]:
        quote = " ".join(c["quote"].split())
        lines.append(f"[{c['n']}] {Path(c['source']).name}, page {c['page']}: \"{quote[:200]}\"")
    grounded = "yes" if a["grounded"] else "no"
    t = a["timings"]
    lines.append(
        f"route: {a['route']} | grounded: {grounded} | adapter: {a['adapter'] or 'none (base model)'} | "
        f"retrieve {t.get('retrieve_ms', 0):.0f} ms, generate {t.get('generate_ms', 0):.0f} ms"
    )
    return "\n".join(lines)
