"""The ``hybrid`` command: one group, one module per command (ingest, search, ask, eval, tune, adapters, serve, docs, migrate)."""

from __future__ import annotations

import os
import warnings

import click

# transformers draws a "Loading weights" bar on every model load; our commands show their own
# progress, so the model libraries' bars are off unless the user turns them on.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# A deprecation inside transformers that PEFT triggers on every adapter set-up: nothing a user
# of this command can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

from hybrid import __version__
from hybrid.cli.adapters import adapters
from hybrid.cli.ask import ask
from hybrid.cli.docs import docs
from hybrid.cli.eval import eval_command
from hybrid.cli.ingest import ingest
from hybrid.cli.migrate import migrate
from hybrid.cli.search import search
from hybrid.cli.serve import serve
from hybrid.cli.tune import tune


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hybrid")
def main() -> None:
    """Answers grounded in your own documents, written in your own house style.

    \b
    hybrid ingest reports/          PDFs -> searchable index
    hybrid tune examples.jsonl      house-style examples -> LoRA adapter house@vN
    hybrid adapters list            adapter versions; activate, rollback, export
    hybrid ask "question"           cited answer from the index, in house style
    hybrid eval qa.csv              scorecard of answers to your own questions
    hybrid serve                    the same over HTTP (POST /v1/query)
    hybrid docs list                what the index holds
    hybrid migrate postgresql://... copy the index into PostgreSQL, shared by many servers

    Data lives in $HYBRID_HOME (default ~/.hybrid).
    """


for command in (ingest, search, ask, eval_command, tune, adapters, serve, docs, migrate):
    main.add_command(command)

__all__ = ["main"]
