"""Training settings chosen from the size of the dataset, each with a plain-words reason.

The bands follow the product's guidance (see `tune.advice`): under about 500 examples an
adapter is unlikely to specialise much, so small data gets a small rank and more passes;
500-2,000 suit a house style or format; larger sets can fill a wider update in one pass.
Settings the user gives always win (`apply_defaults`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tune.advice import MIN_EXAMPLES, STYLE_EXAMPLES

# Above this many examples one pass is plenty and a lower rate keeps the many steps stable.
LARGE_EXAMPLES = 10_000
# Fewest optimiser steps worth running: the LoRA update starts at zero, and with 5% warm-up
# and a linear decay a shorter run spends little time near the peak rate.
MIN_STEPS = 60
# Most passes over the same examples: beyond this the adapter memorises them.
MAX_EPOCHS = 5
# A run shorter than this many steps gets 1.5x the band's learning rate to move within them.
SHORT_RUN_STEPS = 100
# Tokens per optimiser step to aim for when the median example length is known: the usual
# batch of 8 at a typical 256-token chat example. Batches stay within 4-16 examples.
STEP_TOKENS = 2_048
BATCH_SIZES = (4, 16)
DEFAULT_BATCH_SIZE = 8

# The fields chosen here, in the order they are described, and how each is named in a line.
_LABELS = {
    "rank": "rank",
    "alpha": "alpha",
    "learning_rate": "learning rate",
    "epochs": "epochs",
    "batch_size": "batch size",
}


@dataclass(frozen=True)
class Defaults:
    """Settings for a dataset of a given size, with why each was chosen.

    Attributes:
        n_examples: training examples the settings were chosen for.
        median_tokens: median tokens per example, when known (sizes the batch).
        rank: LoRA rank.
        alpha: LoRA alpha (twice the rank: the usual scale of 2).
        learning_rate: peak AdamW learning rate.
        epochs: passes over the training examples.
        batch_size: examples per optimiser step.
        reasons: one plain-words line per field above (from rank to batch_size).
    """

    n_examples: int
    median_tokens: int | None
    rank: int
    alpha: float
    learning_rate: float
    epochs: int
    batch_size: int
    reasons: dict[str, str] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values (for --json output and the adapter record)."""
        return asdict(self)

    def describe(self) -> list[str]:
        """One line per setting, e.g. ``"rank 8: ... (from 1,240 examples)"``."""
        return [f"{_LABELS[name]} {_show(name, getattr(self, name))}: {self.reasons[name]}" for name in _LABELS]


def choose_defaults(n_examples: int, median_tokens: int | None = None) -> Defaults:
    """Choose rank, alpha, learning rate, epochs and batch size for ``n_examples`` examples.

    Args:
        n_examples: usable training examples (after checks and the held-out split).
        median_tokens: median tokens per example after the chat template, if known; it sizes
            the batch to about `STEP_TOKENS` tokens per step. Without it the batch is 8.

    Returns:
        The settings with a one-line reason for each.

    Raises:
        ValueError: ``n_examples`` or ``median_tokens`` is not a positive integer.
    """
    _check_positive("n_examples", n_examples)
    if median_tokens is not None:
        _check_positive("median_tokens", median_tokens)
    return _choose(n_examples, median_tokens, batch_size=None)


def apply_defaults(config_overrides: dict[str, Any], defaults: Defaults) -> tuple[dict[str, Any], list[str]]:
    """Fill the settings the user did not give with ``defaults``; the user's values win.

    A setting counts as given when its key is present with a value other than None. When the
    user gives the rank but not alpha, alpha is twice their rank (keeping the scale of 2); when
    they give the batch size but not the epochs, the epochs are chosen for their batch size.

    Args:
        config_overrides: settings the user gave, as for `TuneConfig.from_dict`; keys other
            than the chosen fields pass through untouched (TuneConfig validates them all).
        defaults: from `choose_defaults`.

    Returns:
        The settings to build the `TuneConfig` from, and one line per chosen field saying
        its value and either "set by you" or why it was chosen.
    """
    given = {name for name in _LABELS if config_overrides.get(name) is not None}
    batch = config_overrides.get("batch_size")
    if "batch_size" in given and _is_positive_int(batch) and batch != defaults.batch_size:
        defaults = _choose(defaults.n_examples, defaults.median_tokens, batch_size=batch)
    settings = dict(config_overrides)
    rank = config_overrides.get("rank")
    lines = []
    for name in _LABELS:
        if name in given:
            reason = "set by you"
        elif name == "alpha" and "rank" in given and _is_positive_int(rank):
            settings[name] = float(2 * rank)
            reason = "twice your rank, the usual scale of 2"
        else:
            settings[name] = getattr(defaults, name)
            reason = defaults.reasons[name]
        lines.append(f"{_LABELS[name]} {_show(name, settings[name])}: {reason}")
    return settings, lines


def _choose(n: int, median_tokens: int | None, *, batch_size: int | None) -> Defaults:
    """The rules; ``batch_size`` given: the user's batch, else one sized here."""
    origin = f"(from {n:,} examples)"
    if n < MIN_EXAMPLES:
        rank, rate, epochs = 8, 2e-4, 3
        rank_why = f"under {MIN_EXAMPLES} examples a small update is all the data can fill, and it memorises less"
        epochs_why = "small data: more passes, with early stopping on held-out examples guarding against overfitting"
    elif n <= STYLE_EXAMPLES:
        rank, rate, epochs = 8, 2e-4, 2
        rank_why = f"{MIN_EXAMPLES}-{STYLE_EXAMPLES:,} examples suit a house style or format, which a small update learns"
        epochs_why = "two passes learn a style from this many examples without memorising them"
    elif n <= LARGE_EXAMPLES:
        rank, rate, epochs = 16, 2e-4, 1
        rank_why = "more examples than a style needs: a wider update can take in what they add"
        epochs_why = "one pass: this many examples give enough steps"
    else:
        rank, rate, epochs = 32, 1e-4, 1
        rank_why = f"over {LARGE_EXAMPLES:,} examples can fill a wide update (a larger change of behaviour)"
        epochs_why = "one pass: this many examples give plenty of steps"
    rate_why = "the common LoRA rate" if rate == 2e-4 else "a lower rate keeps a long run stable"

    batch_why = "set by you"
    if batch_size is None:
        batch_size, batch_why = _batch_size(n, median_tokens)
    per_epoch = math.ceil(n / batch_size)
    if per_epoch * epochs < MIN_STEPS:
        wanted = math.ceil(MIN_STEPS / per_epoch)
        if wanted <= MAX_EPOCHS:
            epochs_why = f"raised from {epochs} so the run has at least {MIN_STEPS} optimiser steps, {per_epoch} per epoch"
        else:
            epochs_why = (
                f"the most passes before the adapter memorises the examples; still only {per_epoch * MAX_EPOCHS} steps, "
                "so hold out examples for early stopping and add data if you can"
            )
        epochs = min(wanted, MAX_EPOCHS)
    steps = per_epoch * epochs
    if steps < SHORT_RUN_STEPS:
        rate = float(f"{rate * 1.5:.2g}")
        rate_why = f"1.5x the usual rate, because the run is only {steps} steps"
    return Defaults(
        n_examples=n,
        median_tokens=median_tokens,
        rank=rank,
        alpha=float(2 * rank),
        learning_rate=rate,
        epochs=epochs,
        batch_size=batch_size,
        reasons={
            "rank": f"{rank_why} {origin}",
            "alpha": "twice the rank, the usual scale of 2",
            "learning_rate": f"{rate_why} {origin}",
            "epochs": f"{epochs_why} {origin}",
            "batch_size": batch_why,
        },
    )


def _batch_size(n: int, median_tokens: int | None) -> tuple[int, str]:
    """The batch size, and why: about `STEP_TOKENS` tokens per step, at most 8 for small data."""
    if median_tokens is None:
        return DEFAULT_BATCH_SIZE, "the usual batch (the example lengths were not given)"
    low, high = BATCH_SIZES
    # The power of two nearest (on a log scale) to the batch that holds STEP_TOKENS tokens.
    size = 2 ** round(math.log2(STEP_TOKENS / median_tokens))
    size = max(low, min(high, size))
    why = f"about {STEP_TOKENS:,} tokens per step at a median of {median_tokens:,} tokens per example"
    if n < MIN_EXAMPLES and size > DEFAULT_BATCH_SIZE:
        return DEFAULT_BATCH_SIZE, f"small data: more, smaller steps (median {median_tokens:,} tokens per example)"
    return size, why


def _show(name: str, value: Any) -> str:
    """A value as a line shows it: 2e-4 rather than 0.0002, 16 rather than 16.0."""
    if name == "learning_rate" and isinstance(value, float):
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_positive(name: str, value: object) -> None:
    if not _is_positive_int(value):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
