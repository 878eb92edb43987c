"""Settings chosen from the dataset size: one band per size, tiny sets, and user values winning."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tune import TuneConfig
from tune.defaults import MAX_EPOCHS, MIN_STEPS, Defaults, apply_defaults, choose_defaults


def settings(d: Defaults) -> tuple:
    return d.rank, d.alpha, d.learning_rate, d.epochs, d.batch_size


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (300, (8, 16.0, 2e-4, 3, 8)),  # under 500: small rank, more passes
        (499, (8, 16.0, 2e-4, 3, 8)),
        (500, (8, 16.0, 2e-4, 2, 8)),  # 500-2,000: a house style or format
        (1_240, (8, 16.0, 2e-4, 2, 8)),
        (2_000, (8, 16.0, 2e-4, 2, 8)),
        (2_001, (16, 32.0, 2e-4, 1, 8)),  # 2,000-10,000: wider, one pass
        (10_000, (16, 32.0, 2e-4, 1, 8)),
        (10_001, (32, 64.0, 1e-4, 1, 8)),  # above 10,000: wide, lower rate
        (60_000, (32, 64.0, 1e-4, 1, 8)),
    ],
)
def test_each_size_band_gets_its_settings(n: int, expected: tuple) -> None:
    assert settings(choose_defaults(n)) == expected


def test_tiny_sets_get_more_epochs_to_reach_the_minimum_steps() -> None:
    d = choose_defaults(120)  # 15 steps per epoch at batch 8
    assert d.epochs == 4 and d.epochs * 15 >= MIN_STEPS
    assert "raised from 3" in d.reasons["epochs"]
    assert d.learning_rate == 3e-4  # a 60-step run gets 1.5x the rate
    assert "only 60 steps" in d.reasons["learning_rate"]


def test_epochs_are_capped_when_even_the_most_passes_give_few_steps() -> None:
    d = choose_defaults(50)  # 7 steps per epoch
    assert d.epochs == MAX_EPOCHS
    assert "still only 35 steps" in d.reasons["epochs"]
    assert choose_defaults(1).epochs == MAX_EPOCHS


def test_the_median_length_sizes_the_batch() -> None:
    assert choose_defaults(5_000, median_tokens=256).batch_size == 8
    assert choose_defaults(5_000, median_tokens=100).batch_size == 16  # short examples: more per step
    assert choose_defaults(5_000, median_tokens=20).batch_size == 16  # never above 16
    assert choose_defaults(5_000, median_tokens=700).batch_size == 4  # long ones: fewer, never below 4
    assert "median of 700 tokens" in choose_defaults(5_000, median_tokens=700).reasons["batch_size"]
    # Small data keeps batches of 8 or fewer, for more steps.
    assert choose_defaults(300, median_tokens=100).batch_size == 8


def test_describe_gives_one_line_per_setting() -> None:
    lines = choose_defaults(1_240).describe()
    assert [line.split(":")[0] for line in lines] == [
        "rank 8", "alpha 16", "learning rate 2e-4", "epochs 2", "batch size 8",
    ]
    assert lines[0].endswith("(from 1,240 examples)")
    assert choose_defaults(120).describe()[2].startswith("learning rate 3e-4: ")


def test_to_dict_is_json_ready_and_defaults_are_frozen() -> None:
    d = choose_defaults(1_240, median_tokens=240)
    record = json.loads(json.dumps(d.to_dict()))
    assert record["rank"] == 8 and record["median_tokens"] == 240 and set(record["reasons"]) == {
        "rank", "alpha", "learning_rate", "epochs", "batch_size",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.rank = 4  # type: ignore[misc]


@pytest.mark.parametrize(("n", "median"), [(0, None), (-5, None), (True, None), (1.5, None), (100, 0)])
def test_bad_counts_are_refused(n: object, median: object) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        choose_defaults(n, median)  # type: ignore[arg-type]


def test_apply_fills_everything_the_user_left_out() -> None:
    values, lines = apply_defaults({"max_steps": None, "seed": 3}, choose_defaults(5_000))
    config = TuneConfig.from_dict(values)
    assert (config.rank, config.alpha, config.learning_rate, config.epochs, config.batch_size) == (16, 32, 2e-4, 1, 8)
    assert (config.seed, config.max_steps) == (3, None)  # other settings pass through
    assert len(lines) == 5 and not any("set by you" in line for line in lines)


def test_user_values_win_and_are_reported() -> None:
    user = {"learning_rate": 5e-5, "epochs": 7, "alpha": 8}
    values, lines = apply_defaults(user, choose_defaults(300))
    assert (values["learning_rate"], values["epochs"], values["alpha"]) == (5e-5, 7, 8)
    assert values["rank"] == 8  # not given: chosen
    assert lines == [
        lines[0], "alpha 8: set by you", "learning rate 5e-5: set by you", "epochs 7: set by you", lines[4],
    ]
    assert "set by you" not in lines[0] and lines[0].startswith("rank 8: ")
    assert user == {"learning_rate": 5e-5, "epochs": 7, "alpha": 8}  # the caller's dict is not changed


def test_a_user_rank_brings_alpha_along_unless_alpha_is_given() -> None:
    values, lines = apply_defaults({"rank": 4}, choose_defaults(20_000))
    assert (values["rank"], values["alpha"]) == (4, 8.0)
    assert lines[:2] == ["rank 4: set by you", "alpha 8: twice your rank, the usual scale of 2"]
    values, _ = apply_defaults({"rank": 4, "alpha": 32}, choose_defaults(20_000))
    assert values["alpha"] == 32


def test_none_counts_as_not_given() -> None:
    values, lines = apply_defaults({"rank": None, "epochs": None}, choose_defaults(1_240))
    assert (values["rank"], values["epochs"]) == (8, 2)
    assert "set by you" not in " ".join(lines)


def test_a_user_batch_size_rechooses_the_epochs() -> None:
    # 100 examples at batch 8: 13 steps an epoch, so 5 epochs; at batch 2: 50 an epoch, the band's 3 do.
    d = choose_defaults(100)
    assert d.epochs == 5
    values, lines = apply_defaults({"batch_size": 2}, d)
    assert (values["batch_size"], values["epochs"]) == (2, 3)
    assert lines[4] == "batch size 2: set by you"
