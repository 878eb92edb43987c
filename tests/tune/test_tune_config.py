"""TuneConfig validation: every bad field reported at once."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from tune import TuneConfig, TuneConfigError


def test_defaults_are_the_documented_ones() -> None:
    config = TuneConfig()
    assert (config.rank, config.alpha, config.dropout, config.learning_rate) == (8, 16, 0.0, 2e-4)
    assert (config.epochs, config.max_steps, config.batch_size, config.max_length) == (1, None, 8, 1024)
    assert (config.seed, config.target_modules) == (0, "all-linear")
    assert (config.warmup_ratio, config.weight_decay) == (0.05, 0.0)


def test_all_problems_are_collected_then_raised_once() -> None:
    with pytest.raises(TuneConfigError) as caught:
        TuneConfig(rank=0, learning_rate=-1.0, dropout=1.0, epochs=True, max_steps=0, threads=0, target_modules=[])
    names = [p.split()[0] for p in caught.value.problems]
    assert names == ["rank", "epochs", "max_steps", "threads", "learning_rate", "dropout", "target_modules"]
    assert "rank must be an integer >= 1, got 0" in str(caught.value)


def test_from_dict_refuses_unknown_keys() -> None:
    assert TuneConfig.from_dict(asdict(TuneConfig(rank=4))).rank == 4
    with pytest.raises(TuneConfigError, match="unknown setting 'epoch'"):
        TuneConfig.from_dict({"epoch": 2})


def test_target_modules_may_be_a_list() -> None:
    assert TuneConfig(target_modules=("q_proj", "v_proj")).target_modules == ["q_proj", "v_proj"]
