"""``hybrid eval QA_FILE``: a scorecard of the answers to your own questions, beside another setup."""

from __future__ import annotations

import json
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from hybrid.cli._common import allow_download_option, guarded, index_option, json_option, k_option, log, settings_from
from hybrid.errors import ConfigError


@click.command(name="eval")
@click.argument("qa_file", type=click.Path(dir_okay=False))
@index_option
@click.option("--adapter", default=None, help="NAME, NAME@vN, a directory, or 'none' [default: active 'house', if any].")
@k_option
@click.option("--off-corpus", "off_corpus", type=click.Path(dir_okay=False), default=None,
              help="Questions the documents do not cover, one per line [default: a built-in set of 10].")
@click.option("--against", default=None,
              help="A second setup, run on the same questions in the same run: a TOML file of settings, or "
              "KEY=VALUE pairs separated by commas ('evidence=0', 'search.mode=dense,k=3').")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N questions.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where scorecard.json, scorecard.md and scorecard.png go [default: $HYBRID_HOME/evals/<time>].")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar with an ETA [default: on a terminal].")
@allow_download_option
@json_option
@guarded
def eval_command(
    qa_file: str,
    index: str | None,
    adapter: str | None,
    k: int | None,
    off_corpus: str | None,
    against: str | None,
    limit: int | None,
    out: str | None,
    progress: bool | None,
    allow_download: bool | None,
    as_json: bool,
) -> None:
    """Score answers to the questions of QA_FILE against their gold answers.

    QA_FILE is CSV or JSONL with a question and a gold answer per row, and optionally the gold
    source (file name or glob) and page. The scorecard gives retrieval hit@k and MRR, answer
    token F1 and recall (of the gold words beyond the question too), numbers stated, sentences
    the cited passages support, valid citations, refusals and latency; with --against, the same
    for a second setup and the ratio between them.
    """
    from hybrid import evaluation, report
    from hybrid.pipeline import Pipeline
    from hybrid.qa import read_qa, read_questions

    items = read_qa(qa_file)[:limit]
    questions = read_questions(off_corpus) if off_corpus else list(evaluation.OFF_CORPUS)
    settings = settings_from(index=index, adapter=adapter, allow_download=allow_download)
    pipeline = Pipeline(settings)
    pipeline.load()
    k = k if k is not None else settings.k
    systems = {"hybrid": evaluation.pipeline_system(pipeline, k)}
    if against:
        overrides = _overrides(against)
        shared = pipeline.embedder if "embedder" not in overrides else None  # one copy of the model when it is the same
        other = Pipeline(settings_from(**_merged(settings.model_dump(exclude_unset=True), overrides)), embedder=shared)
        other.load()
        systems[f"against: {against}"] = evaluation.pipeline_system(other, k)
    total = (len(items) + len(questions)) * len(systems)
    log(f"scoring {len(items)} questions and {len(questions)} off-corpus ones on {len(systems)} setup(s)")
    bar = _Bar(total, sys.stderr.isatty() if progress is None else progress)
    cards = evaluation.run(systems, items, questions, pipeline.support_check(), k, progress=lambda _: bar.update(1))
    bar.close()
    bodies = [card.to_dict() for card in cards]
    body = {**bodies[0], "against": bodies[1] if len(bodies) > 1 else None}
    folder = Path(out) if out else settings.evals_dir / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    table = report.markdown(bodies)
    (folder / "scorecard.json").write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    (folder / "scorecard.md").write_text(table + "\n")
    picture = report.plot(bodies, folder / "scorecard.png")
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False))
        return
    click.echo(table)
    click.echo(f"\nwrote {folder / 'scorecard.json'}" + (f" and {picture.name}" if picture else ""))


def _overrides(text: str) -> dict[str, Any]:
    """Settings from a TOML file, or from ``KEY=VALUE,KEY=VALUE`` (dotted keys nest)."""
    path = Path(text)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ConfigError(f"--against: no settings file at {path}")
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--against: {path} is not valid TOML: {exc}") from exc
    found: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--against: {pair!r} is not KEY=VALUE (for example evidence=0)")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        *parents, leaf = key.strip().split(".")
        target = found
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return found


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Bar:
    """A tqdm bar on stderr with an ETA, or nothing."""

    def __init__(self, total: int, show: bool) -> None:
        self._bar = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="answer", file=sys.stderr, dynamic_ncols=True, leave=False)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
