"""The loss-curve PNG: written from any metrics.json train.py can produce, never raising on odd values."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tune.plot import _epoch_ends, moving_average, write_loss_curve

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORANGE = (255, 127, 14)  # matplotlib's tab:orange, the colour of the held-out markers


def metrics(losses: list[float], epoch_losses: list[float] | None = None, base: float | None = None) -> dict:
    """A metrics dict shaped like the one tune/train.py writes to metrics.json."""
    epoch_losses = epoch_losses or []
    return {
        "dtype": "float32",
        "steps": [
            {"step": i + 1, "loss": loss, "lr": 2e-4, "tokens": 512, "seconds": 0.5} for i, loss in enumerate(losses)
        ],
        "base_eval_loss": base,
        "eval_loss": epoch_losses[-1] if epoch_losses else None,
        "epoch_eval_losses": epoch_losses,
    }


def read_png(path: Path) -> Image.Image:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = Image.open(path)
    image.load()
    return image.convert("RGB")


def has_colour(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    return any(count for count, rgb in image.getcolors(maxcolors=1 << 20) if rgb == colour)


def test_a_full_run_gives_a_png_with_the_held_out_markers(tmp_path: Path) -> None:
    run = metrics([3.0 - 0.02 * i for i in range(60)], epoch_losses=[2.4, 2.1, 2.0], base=2.9)
    path = write_loss_curve(run, tmp_path / "plots" / "loss.png")
    assert path == tmp_path / "plots" / "loss.png"
    image = read_png(path)
    assert image.size == (800, 450)
    assert has_colour(image, ORANGE)


def test_without_eval_losses_there_are_no_markers(tmp_path: Path) -> None:
    image = read_png(write_loss_curve(metrics([2.0, 1.5, 1.2, 1.1]), tmp_path / "loss.png"))
    assert image.size == (800, 450)
    assert not has_colour(image, ORANGE)


@pytest.mark.parametrize(
    "run",
    [
        metrics([2.5]),
        metrics([2.5], epoch_losses=[2.4], base=2.6),
        metrics([]),
        metrics([math.nan, 2.0, math.inf, math.nan, 1.5], epoch_losses=[math.nan, 1.4], base=math.nan),
        metrics([math.nan, math.nan]),
        {},
        {"steps": [{"step": 1}, "not a step", {"loss": "high"}], "epoch_eval_losses": None, "base_eval_loss": "x"},
    ],
    ids=["one-step", "one-step-with-eval", "no-steps", "nan-and-inf", "all-nan", "empty-dict", "malformed"],
)
def test_odd_metrics_still_give_a_png(tmp_path: Path, run: dict) -> None:
    image = read_png(write_loss_curve(run, tmp_path / "loss.png"))
    assert image.size == (800, 450)


def test_old_metrics_with_only_the_final_eval_loss_get_one_marker(tmp_path: Path) -> None:
    run = metrics([2.0, 1.8, 1.6])
    run.pop("epoch_eval_losses")
    run["eval_loss"] = 1.7
    assert has_colour(read_png(write_loss_curve(run, tmp_path / "loss.png")), ORANGE)


def test_moving_average_skips_non_finite_losses() -> None:
    smoothed = moving_average([math.nan, 2.0, math.inf, 1.0], weight=0.5)
    assert math.isnan(smoothed[0])
    assert smoothed[1:] == [2.0, 2.0, 1.5]


def test_epoch_ends_split_evenly_or_by_the_given_epoch_length() -> None:
    assert _epoch_ends(3, 30, None) == [10, 20, 30]
    # Stopped early after epoch 2 of 10 steps: the final loss repeats at the last step.
    assert _epoch_ends(3, 20, 10) == [10, 20, 20]
    # max_steps stopped mid-way through epoch 3.
    assert _epoch_ends(3, 25, 10) == [10, 20, 25]
    assert _epoch_ends(1, 0, None) == [0]


def test_a_bad_steps_per_epoch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive integer"):
        write_loss_curve(metrics([1.0]), tmp_path / "loss.png", steps_per_epoch=0)


def test_missing_matplotlib_gives_none_and_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry in sys.modules makes `import` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with caplog.at_level(logging.WARNING, logger="tune.plot"):
        assert write_loss_curve(metrics([1.0, 0.9]), tmp_path / "loss.png") is None
    assert "matplotlib is not installed" in caplog.text
    assert not (tmp_path / "loss.png").exists()


def test_the_users_pyplot_backend_is_left_alone(tmp_path: Path) -> None:
    code = (
        "import matplotlib, sys\n"
        "from pathlib import Path\n"
        "matplotlib.use('svg')\n"
        "from tune.plot import write_loss_curve\n"
        f"write_loss_curve({{'steps': [{{'loss': 1.0}}]}}, Path({str(tmp_path / 'loss.png')!r}))\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["svg", "False"]
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_SIGNATURE
