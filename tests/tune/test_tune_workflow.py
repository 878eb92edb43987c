"""tune(): check first, refuse bad data unless forced, record each run as a new version."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tune import AdapterRegistry, DatasetError, TuneConfig, tune

CONFIG = TuneConfig(max_steps=2, batch_size=4, learning_rate=1e-2)


def run(paths, registry: AdapterRegistry, model_dir: Path, **kwargs):
    return tune(paths, name="house", registry=registry, base_model_dir=model_dir, base_model_spec="tiny-spec",
                config=CONFIG, **kwargs)


def test_two_runs_make_two_versions_with_metadata(tmp_path, tiny_model_dir, write_jsonl, house_examples) -> None:
    data = write_jsonl(tmp_path / "house.jsonl", house_examples(8))
    held_out = write_jsonl(tmp_path / "eval.jsonl", house_examples(10)[8:])
    registry = AdapterRegistry(tmp_path / "adapters")
    first = run(data, registry, tiny_model_dir, eval_path=held_out)
    second = run([data], registry, tiny_model_dir)
    assert (first.version.ref, second.version.ref) == ("house@v1", "house@v2")
    assert registry.resolve("house").ref == "house@v2"
    assert first.examples == 8 and first.check.ok and any("only 8 examples" in w for w in first.check.warnings)
    meta = json.loads((first.version.path / "meta.json").read_text())
    assert meta["base_model"] == "tiny-spec" and meta["base_model_dir"] == str(tiny_model_dir)
    assert meta["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert (meta["examples"], meta["eval_examples"], meta["steps"]) == (8, 2, 2)
    assert meta["hyperparameters"]["max_steps"] == 2 and meta["hyperparameters"]["rank"] == 8
    assert meta["losses"]["eval_loss"] == first.result.eval_loss is not None
    assert meta["losses"]["base_eval_loss"] is not None and meta["created"] and meta["tune_version"]
    assert first.version.meta == meta


def test_bad_data_is_refused_unless_forced(tmp_path, tiny_model_dir, write_jsonl, house_examples) -> None:
    data = write_jsonl(tmp_path / "mixed.jsonl", house_examples(4) + ["{broken", {"prompt": "no answer"}])
    registry = AdapterRegistry(tmp_path / "adapters")
    with pytest.raises(DatasetError) as caught:
        run(data, registry, tiny_model_dir)
    assert [(p.line, p.code) for p in caught.value.report.problems] == [(5, "malformed_json"), (6, "unknown_format")]
    assert "--force" in str(caught.value)
    assert registry.names() == [] and not (tmp_path / "adapters" / "house").exists()
    outcome = run(data, registry, tiny_model_dir, force=True)
    assert outcome.examples == 4 and outcome.version.ref == "house@v1" and not outcome.check.ok


def test_bad_eval_data_is_refused(tmp_path, tiny_model_dir, write_jsonl, house_examples) -> None:
    data = write_jsonl(tmp_path / "house.jsonl", house_examples(4))
    held_out = write_jsonl(tmp_path / "eval.jsonl", ["not json"])
    with pytest.raises(DatasetError, match="evaluation examples"):
        run(data, AdapterRegistry(tmp_path / "adapters"), tiny_model_dir, eval_path=held_out)


def test_a_failed_run_leaves_no_version(tmp_path, write_jsonl, house_examples) -> None:
    data = write_jsonl(tmp_path / "house.jsonl", house_examples(4))
    registry = AdapterRegistry(tmp_path / "adapters")
    with pytest.raises(Exception):
        run(data, registry, tmp_path / "no-model-here")
    assert list((tmp_path / "adapters" / "house").iterdir()) == []


def test_over_long_examples_are_measured_with_the_base_tokenizer_and_refused(
    tmp_path, tiny_model_dir, write_jsonl, house_examples
) -> None:
    long = {"messages": [{"role": "user", "content": "Please help. " * 200},
                         {"role": "assistant", "content": "Dear customer, we will help."}]}
    data = write_jsonl(tmp_path / "long.jsonl", house_examples(4) + [long])
    registry = AdapterRegistry(tmp_path / "adapters")
    config = TuneConfig(max_steps=1, batch_size=4, max_length=128)
    with pytest.raises(DatasetError) as caught:
        tune(data, name="house", registry=registry, base_model_dir=tiny_model_dir, base_model_spec=str(tiny_model_dir),
             config=config)
    assert [(p.line, p.code) for p in caught.value.report.problems] == [(5, "too_long")]
    assert caught.value.report.lengths["tokenizer"] == tiny_model_dir.name
    outcome = tune(data, name="house", registry=registry, base_model_dir=tiny_model_dir,
                   base_model_spec=str(tiny_model_dir), config=config, force=True)
    assert outcome.examples == 4 and outcome.version.meta["examples"] == 4
