"""``hybrid ask QUESTION``: a cited answer from the index, in the adapter's house style."""

from __future__ import annotations

from pathlib import Path

import click

from hybrid.cli._common import allow_download_option, emit, engine_option, guarded, index_option, json_option, k_option, pages_option, settings_from, source_option


@click.command()
@click.argument("question")
@index_option
@click.option("--adapter", default=None, help="NAME, NAME@vN, a directory, or 'none' [default: active 'house', if any].")
@k_option
@source_option
@pages_option
@click.option("--strict", is_flag=True, help="Refuse, with the reason, rather than print any sentence the passages do not support.")
@click.option(
    "--unsupported",
    type=click.Choice(["drop", "flag"]),
    default="drop",
    show_default=True,
    help="What to do with a sentence the passages do not support: leave it out, or keep it and report grounded: no.",
)
@engine_option
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
    strict: bool,
    unsupported: str,
    engine: str | None,
    allow_download: bool | None,
    as_json: bool,
) -> None:
    """Answer QUESTION from your documents, citing file and page.

    A QUESTION that supplies its own text and asks to rewrite, format, summarise or translate
    it ("Rewrite this in our house style: ...") is rewritten without retrieval (route: style).
    """
    from hybrid.pipeline import Pipeline

    pipeline = Pipeline(settings_from(index=index, allow_download=allow_download, engine=engine))
    answer = pipeline.ask(
        question, k=k, adapter=adapter, sources=sources or None, pages=pages, strict=strict, unsupported=unsupported
    )
    emit(answer.to_dict(), as_json, format_answer)


def format_answer(a: dict) -> str:
    """Human-readable answer: text, numbered citations, then route and timings."""
    lines = [a["answer"], ""]
    for c in a["citations"]:
        quote = " ".join(c["quote"].split())
        lines.append(f"[{c['n']}] {Path(c['source']).name}, page {c['page']}: \"{quote[:200]}\"")
    dropped = [s for s in a.get("sentences", []) if not s["kept"]]
    flagged = [s for s in a.get("sentences", []) if s["kept"] and not s["supported"]]
    if dropped:
        lines.append(f"left out {len(dropped)} sentence(s) the passages do not support, first: \"{dropped[0]['text'][:120]}\"")
    if flagged:
        lines.append(f"not supported by the passages: {len(flagged)} sentence(s), first: \"{flagged[0]['text'][:120]}\"")
    if a["route"] != "rag" and a.get("reason"):
        lines.append(f"why: {a['reason']}")
    grounded = "yes" if a["grounded"] else "no"
    t = a["timings"]
    lines.append(
        f"route: {a['route']} | grounded: {grounded} | adapter: {a['adapter'] or 'none (base model)'} | "
        f"retrieve {t.get('retrieve_ms', 0):.0f} ms, generate {t.get('generate_ms', 0):.0f} ms"
    )
    return "\n".join(lines)
