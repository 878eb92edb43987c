"""``hybrid tune EXAMPLES...``: train a house-style LoRA adapter (or ``--check`` the examples);
``hybrid tune eval ADAPTER EXAMPLES``: its held-out loss and style score against the base model."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from hybrid.cli._common import FAILURE, OK, PARTIAL, allow_download_option, emit, guarded, json_option, log, settings_from
from hybrid.cli.tune_text import check_text, eval_text, tune_text


class _ParentPathContext(click.Context):
    """Usage lines of the default command read ``hybrid tune ...``, as it is invoked."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else super().command_path


class _DefaultCommand(click.Command):
    context_class = _ParentPathContext


class _TuneGroup(click.Group):
    """Subcommands (``eval``) by name; any other first argument goes to the default command.

    ``hybrid tune EXAMPLES...`` and ``hybrid tune --check EXAMPLES...`` (the contract) stay as
    they were: an examples file named like a subcommand is reached as ``./eval``.
    """

    def __init__(self, name: str, default: click.Command, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.default = default
        self.add_command(default)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default.name or "", *args]  # no arguments: the default's usage error, as before
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.default.format_help(_ParentPathContext(self.default, info_name=self.default.name, parent=ctx), formatter)
        self.format_commands(ctx, formatter)


@click.command("train", cls=_DefaultCommand, hidden=True)
@click.argument("examples", nargs=-1, required=True, type=click.Path())
@click.option("--check", "check_only", is_flag=True, help="Validate the examples only; exit 1 on problems.")
@click.option("--name", default="house", show_default=True, help="Adapter name; each run makes NAME@vN.")
@click.option("--base-model", default=None, help="Base model: HF id or directory [default: SmolLM2-135M-Instruct].")
@click.option("--epochs", type=click.IntRange(1, 100), default=None, help="Passes over the examples [default: from the data size].")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop after this many optimiser steps.")
@click.option("--learning-rate", type=click.FloatRange(0, 1, min_open=True), default=None, help="Peak learning rate [default: from the data size].")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Examples per optimiser step [default: from the data size].")
@click.option("--rank", type=click.IntRange(1), default=None, help="LoRA rank [default: from the data size].")
@click.option(
    "--max-length", type=click.IntRange(16), default=None,
    help="Longest example in base-model tokens; longer ones are skipped with a warning [default: 1024].",
)
@click.option(
    "--eval", "eval_path", type=click.Path(dir_okay=False), default=None,
    help="Held-out examples: loss before, after and per epoch [default: 10% of the examples, from 50].",
)
@click.option("--from", "from_ref", metavar="REF", default=None, help="Continue from this adapter (NAME or NAME@vN), replaying its examples.")
@click.option("--resume", is_flag=True, help="Continue the last interrupted run of --name from its checkpoint.")
@click.option(
    "--gate", type=click.Choice(["loss+style", "loss", "off"]), default=None,
    help="Activate the new version only if not worse than the active one on held-out loss (and style) [default: loss+style].",
)
@click.option("--force", is_flag=True, help="Train even when --check finds problems (bad lines are skipped).")
@click.option("--input-column", default=None, help="CSV: the column holding the input.")
@click.option("--output-column", default=None, help="CSV: the column holding the house-style output.")
@click.option(
    "--with-context", "with_context", metavar="DIR|URL", default=None,
    help="Train on the answer prompt: each example with passages from this index (a directory or a PostgreSQL URL) and citations (RAFT).",
)
@allow_download_option
@json_option
@guarded
def train(
    examples: tuple[str, ...],
    check_only: bool,
    name: str,
    base_model: str | None,
    epochs: int | None,
    max_steps: int | None,
    learning_rate: float | None,
    batch_size: int | None,
    rank: int | None,
    max_length: int | None,
    eval_path: str | None,
    force: bool,
    input_column: str | None,
    output_column: str | None,
    with_context: str | None,
    from_ref: str | None,
    resume: bool,
    gate: str | None,
    allow_download: bool | None,
    as_json: bool,
) -> int:
    """Train a style adapter on house-style EXAMPLES (chat/prompt-completion/instruction JSONL, or CSV)."""
    from hybrid.pipeline import Pipeline

    pipe = Pipeline(settings_from(base_model=base_model, allow_download=allow_download))
    columns = {"input_column": input_column, "output_column": output_column}
    if check_only:
        report = pipe.adapters.check(list(examples), base_model=base_model, max_length=max_length, **columns)
        emit(report.to_dict(), as_json, check_text)
        return OK if report.ok else FAILURE
    with _progress_bar() as progress:
        outcome = pipe.tune(
            list(examples), name=name, base_model=base_model, eval_path=eval_path, force=force,
            progress=progress, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
            batch_size=batch_size, rank=rank, max_length=max_length, with_context=with_context,
            from_ref=from_ref, resume=resume, gate=gate, **columns,
        )
    if not outcome.version.meta.recorded:  # a second process under torchrun: the first one reports
        return OK
    payload = outcome.to_dict()
    emit(payload, as_json, tune_text)
    # --force trained on the good lines only: partial success, as for ingest.
    return PARTIAL if outcome.check.problems else OK


class _progress_bar:
    """A tqdm bar on stderr fed by the trainer's progress dicts (step, total, loss, tokens/s)."""

    def __enter__(self) -> Callable[[dict], None]:
        from tqdm import tqdm

        self.bar = None

        def update(info: dict) -> None:
            if "step" not in info:
                if info.get("message"):
                    log(str(info["message"]))
                return
            if self.bar is None:
                self.bar = tqdm(total=info.get("total"), desc="training", unit="step", file=sys.stderr)
            self.bar.update(info["step"] - self.bar.n)
            postfix = {"loss": f"{info['loss']:.3f}"} if info.get("loss") is not None else {}
            if info.get("tokens_per_s"):
                postfix["tok/s"] = f"{info['tokens_per_s']:.0f}"
            self.bar.set_postfix(postfix)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("eval", short_help="Held-out loss and style score of an adapter, against the base model.")
@click.argument("adapter")
@click.argument("examples", type=click.Path(dir_okay=False))
@click.option("--base-model", default=None, help="Base model [default: the one the adapter was trained on].")
@click.option(
    "--max-examples", type=click.IntRange(1), default=8, show_default=True,
    help="Replies generated per model and scored (about max-new-tokens / 20 s each for the 135M model).",
)
@click.option("--max-new-tokens", type=click.IntRange(1), default=128, show_default=True, help="Longest generated reply.")
@click.option("--no-base", is_flag=True, help="Skip the base model (half the generation time).")
@click.option("--input-column", default=None, help="CSV: the column holding the input.")
@click.option("--output-column", default=None, help="CSV: the column holding the house-style output.")
@allow_download_option
@json_option
@guarded
def evaluate(
    adapter: str,
    examples: str,
    base_model: str | None,
    max_examples: int,
    max_new_tokens: int,
    no_base: bool,
    input_column: str | None,
    output_column: str | None,
    allow_download: bool | None,
    as_json: bool,
) -> int:
    """Held-out loss and style score of ADAPTER on EXAMPLES, against the base model.

    ADAPTER is NAME, NAME@vN, an adapter directory, or none (the base model alone). The loss
    covers every example; replies are generated for a fixed sample of --max-examples and scored
    against the references for house style (form, not facts).
    """
    from hybrid.pipeline import Pipeline

    pipe = Pipeline(settings_from(allow_download=allow_download))
    with _eval_progress() as progress:
        report = pipe.adapters.evaluate(
            adapter, examples, base_model=base_model, max_examples=max_examples, max_new_tokens=max_new_tokens,
            base=not no_base, input_column=input_column, output_column=output_column, progress=progress,
        )
    payload = report.to_dict()
    payload["seconds"] = round(payload["seconds"], 1)
    emit(payload, as_json, eval_text)
    return OK


class _eval_progress:
    """A tqdm bar on stderr per generation phase, fed by ``{"phase", "done", "total"}`` dicts."""

    def __enter__(self) -> Callable[[dict], None]:
        from tqdm import tqdm

        self.bar = None

        def update(info: dict) -> None:
            if "phase" not in info:
                self.__exit__()
                if info.get("message"):
                    log(str(info["message"]))
                return
            if self.bar is None:
                self.bar = tqdm(total=info["total"], desc=f"generating ({info['phase']})", unit="reply", file=sys.stderr)
            self.bar.update(info["done"] - self.bar.n)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


tune = _TuneGroup(
    "tune",
    default=train,
    help=(
        "Train a style adapter on house-style EXAMPLES (chat/prompt-completion/instruction JSONL, or CSV); "
        "`hybrid tune eval ADAPTER EXAMPLES` measures one."
    ),
)
tune.add_command(evaluate)
