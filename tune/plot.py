"""A picture of one training run: loss per step and held-out loss per epoch, as a PNG.

matplotlib is imported inside `write_loss_curve`, so ``import tune`` stays light, and only
its object-oriented API is used (a `Figure` drawn by `FigureCanvasAgg`): the user's global
pyplot backend is never touched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Weight of the past in the moving average of the step losses: 0.9 averages over roughly the
# last 10 steps, enough to see the trend through batch-to-batch noise on runs of 30+ steps.
SMOOTHING = 0.9
# Below this many steps each step is drawn as a dot too, so a one-step run still shows.
DOTS_BELOW = 30
# 8 x 4.5 inches at 100 dpi: an 800 x 450 pixel image, readable in a terminal image viewer.
SIZE_INCHES = (8.0, 4.5)
DPI = 100


def write_loss_curve(metrics: dict[str, Any], path: Path, *, steps_per_epoch: int | None = None) -> Path | None:
    """Draw the losses of a training run and save them as a PNG.

    Draws the training loss of every step (light), its exponential moving average, the
    held-out loss after each epoch (markers at the step where the epoch ended; the last one
    is measured when training stopped) and the base model's held-out loss (dashed line).
    Missing, NaN or infinite values are left out of the picture rather than raising: a plot
    is a convenience, and must never cost a trained adapter.

    Args:
        metrics: the dict written to metrics.json by `tune.train.train_adapter` (keys
            ``steps``, ``epoch_eval_losses``, ``base_eval_loss``, ``eval_loss``).
        path: the PNG to write; its folder is created if needed.
        steps_per_epoch: optimiser steps per full epoch. Give it when the run may have
            stopped early; without it the steps are assumed to be split evenly between the
            held-out losses.

    Returns:
        ``path``, or None when matplotlib is not installed (a warning is logged).

    Raises:
        ValueError: ``steps_per_epoch`` is given but not a positive integer.
        OSError: the PNG cannot be written.
    """
    if steps_per_epoch is not None and (
        isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1
    ):
        raise ValueError(f"steps_per_epoch must be a positive integer or None, got {steps_per_epoch!r}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed, so no loss curve was drawn; pip install 'matplotlib>=3.8'")
        return None

    steps = metrics.get("steps") or []
    xs = list(range(1, len(steps) + 1))  # train.py numbers the steps 1, 2, ... in order
    losses = [_number(s.get("loss")) if isinstance(s, dict) else math.nan for s in steps]
    epoch_losses = [_number(v) for v in metrics.get("epoch_eval_losses") or []]
    if not epoch_losses and _finite(_number(metrics.get("eval_loss"))):
        epoch_losses = [_number(metrics.get("eval_loss"))]  # older metrics: only the final loss
    base = _number(metrics.get("base_eval_loss"))

    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)  # attaches itself to the figure; no global backend involved
    axes = figure.add_subplot()
    dots = "." if len(xs) < DOTS_BELOW else None
    axes.plot(xs, losses, color="tab:blue", alpha=0.3, linewidth=1, marker=dots, label="training loss per step")
    axes.plot(
        xs, moving_average(losses), color="tab:blue", linewidth=2,
        label=f"training loss, exponential moving average (weight {SMOOTHING})",
    )
    if epoch_losses:
        axes.plot(
            _epoch_ends(len(epoch_losses), len(xs), steps_per_epoch), epoch_losses, linestyle="none",
            marker="o", markersize=7, color="tab:orange", label="held-out loss, adapter (end of each epoch)",
        )
    if _finite(base):
        axes.axhline(base, color="tab:gray", linestyle="--", linewidth=1.5, label=f"held-out loss, base model ({base:.3f})")
    axes.set_xlabel("optimiser step")
    axes.set_ylabel("loss (mean per reply token)")
    axes.set_title(f"LoRA training: {len(xs):,} step{'' if len(xs) == 1 else 's'}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def moving_average(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average that skips non-finite values (NaN until the first finite one)."""
    out: list[float] = []
    mean = math.nan
    for value in values:
        if _finite(value):
            mean = value if math.isnan(mean) else weight * mean + (1 - weight) * value
        out.append(mean)
    return out


def _epoch_ends(n: int, last_step: int, steps_per_epoch: int | None) -> list[float]:
    """The step after which each of ``n`` held-out losses was measured.

    The last loss is measured once training stops, whatever the reason (end of the last
    epoch, ``max_steps``, early stopping), so it sits at the last step.
    """
    every = steps_per_epoch if steps_per_epoch else last_step / n
    return [min((i + 1) * every, last_step) for i in range(n - 1)] + [last_step]


def _number(value: object) -> float:
    """``value`` as a float; NaN when it is missing, not a number or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if _finite(float(value)) else math.nan


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
