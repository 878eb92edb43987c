"""Fixtures for tests/tune: a LoRA adapter trained on the tiny random Llama (``tiny_model_dir``
from tests/conftest.py, built by tests/support/tiny_llama.py; no download).

Tiers: the default tests use only the tiny model and run in seconds; tests marked ``slow``
convert and run the real embedded SmolLM2-135M-Instruct (``pytest tests/tune -m slow``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# A reply the tiny model cannot produce by chance, repeated so a few LoRA steps learn it.
HOUSE_REPLY = "Dear customer, thank you for your question. Please check your account."


def _house_examples(n: int = 16) -> list[dict]:
    return [
        {"messages": [
            {"role": "user", "content": f"Question {i}: when will my refund arrive?"},
            {"role": "assistant", "content": HOUSE_REPLY},
        ]}
        for i in range(n)
    ]


def _write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def write_jsonl():
    """``write_jsonl(path, records)``: one JSON object (or a raw string) per line."""
    return _write_jsonl


@pytest.fixture
def house_examples():
    """``house_examples(n)``: n chat records with different questions and the same house reply."""
    return _house_examples


@pytest.fixture(scope="session")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(TrainResult, adapter dir, progress events) of one short run on the repeated house reply."""
    from tune import TuneConfig, read_examples, train_adapter

    data = _write_jsonl(tmp_path_factory.mktemp("data") / "house.jsonl", _house_examples())
    examples, _ = read_examples(data)
    out = tmp_path_factory.mktemp("adapter")
    events: list[dict] = []
    config = TuneConfig(rank=8, alpha=16, learning_rate=1e-2, batch_size=4, epochs=20, max_steps=40, seed=0)
    result = train_adapter(examples, tiny_model_dir, out, config, eval_examples=examples[:4], progress=events.append)
    return result, out, events


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded SmolLM2-135M-Instruct, converted once into a temporary cache (slow tests only)."""
    from tune import resolve_base_model

    return resolve_base_model(None, tmp_path_factory.mktemp("models"))
