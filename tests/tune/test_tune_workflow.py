"""tune(): check first, refuse bad data unless forced, record each run as a new version."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tune import AdapterRegistry, DatasetError, TuneConfig, tune
from tune.registry import META_SCHEMA

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
    assert first.version.meta.to_dict() == meta and meta["schema"] == META_SCHEMA


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


def test_over_long_examples_are_measured_with_the_base_tokenizer_and_skipped(
    tmp_path, tiny_model_dir, write_jsonl, house_examples
) -> None:
    long = {"messages": [{"role": "user", "content": "Please help. " * 200},
                         {"role": "assistant", "content": "Dear customer, we will help."}]}
    data = write_jsonl(tmp_path / "long.jsonl", house_examples(4) + [long])
    held_out = write_jsonl(tmp_path / "eval.jsonl", house_examples(7)[4:] + [long])
    registry = AdapterRegistry(tmp_path / "adapters")
    config = TuneConfig(max_steps=1, batch_size=4, max_length=128)
    outcome = tune(data, name="house", registry=registry, base_model_dir=tiny_model_dir,
                   base_model_spec=str(tiny_model_dir), config=config, eval_path=held_out)
    assert outcome.check.ok and [(p.line, p.code) for p in outcome.check.skipped] == [(5, "too_long")]
    assert outcome.check.lengths["tokenizer"] == tiny_model_dir.name
    assert (outcome.examples, outcome.skipped) == (4, 1) and outcome.version.meta.examples == 4
    assert outcome.version.meta.skipped_too_long == 1
    skipping = [w for w in outcome.check.warnings if w.startswith("skipped")]
    assert skipping == [
        "skipped 1 example longer than 128 tokens: line 5; training goes on with the rest. "
        "Shorten or split it, or raise --max-length, to train on it too",
        "skipped 1 evaluation example longer than 128 tokens: line 4; training goes on with the rest. "
        "Shorten or split it, or raise --max-length, to train on it too",
    ]
    assert outcome.version.meta.eval_examples == 3


def test_when_every_example_is_over_long_there_is_nothing_to_train_on(
    tmp_path, tiny_model_dir, write_jsonl
) -> None:
    long = [{"messages": [{"role": "user", "content": f"Please help {i}. " * 200},
                          {"role": "assistant", "content": "Dear customer, we will help."}]} for i in range(2)]
    data = write_jsonl(tmp_path / "long.jsonl", long)
    registry = AdapterRegistry(tmp_path / "adapters")
    config = TuneConfig(max_steps=1, batch_size=4, max_length=128)
    for force in (False, True):  # --force cannot help: nothing is left
        with pytest.raises(DatasetError, match="nothing is left to train on") as caught:
            tune(data, name="house", registry=registry, base_model_dir=tiny_model_dir,
                 base_model_spec=str(tiny_model_dir), config=config, force=force)
        assert [p.line for p in caught.value.report.skipped] == [1, 2]
        assert "--force" not in str(caught.value)
    assert registry.names() == []


def _replies(prefix: str, n: int, reply: str) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"{prefix} question number {i}?"},
                          {"role": "assistant", "content": reply}]} for i in range(n)]


def test_without_eval_a_share_is_held_out_and_unset_settings_follow_the_data_size(
    tmp_path, tiny_model_dir, write_jsonl, house_examples
) -> None:
    data = write_jsonl(tmp_path / "house.jsonl", house_examples(60))
    outcome = run(data, AdapterRegistry(tmp_path / "adapters"), tiny_model_dir)
    assert (outcome.examples, outcome.held_out) == (54, 6)
    assert outcome.result.eval_loss is not None and outcome.version.meta.held_out_from_training == 6
    lines = {line.split(" ")[0]: line for line in outcome.settings}
    assert "set by you" in lines["learning"] and "set by you" in lines["batch"]  # CONFIG sets both
    assert "set by you" not in lines["rank"] and "54" in lines["rank"]  # chosen from the 54 left
    assert outcome.version.meta.settings == outcome.settings


def test_from_continues_with_replay_and_records_the_lineage(tmp_path, tiny_model_dir, write_jsonl, house_examples) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    first = run(write_jsonl(tmp_path / "v1.jsonl", house_examples(8)), registry, tiny_model_dir)
    new = write_jsonl(tmp_path / "v2.jsonl", _replies("Refund", 4, "Dear customer, your refund is on its way."))
    second = run(new, registry, tiny_model_dir, from_ref="house")
    assert (second.version.ref, second.parent, second.replayed, second.examples) == ("house@v2", "house@v1", 8, 4)
    assert second.version.meta.lineage == ["house@v1"] and second.version.meta.replayed == 8
    assert len((second.version.path / "examples.jsonl").read_text().splitlines()) == 4  # its own, not the replay
    assert registry.resolve("house").ref == "house@v2" and registry.resolve("house@v1") == first.version
    # The shape of the adapter it continues is kept, whatever the data size would choose.
    assert second.version.meta.hyperparameters["rank"] == first.version.meta.hyperparameters["rank"]
    newer = write_jsonl(tmp_path / "v3.jsonl", _replies("Invoice", 2, "Dear customer, the invoice is attached."))
    third = run(newer, registry, tiny_model_dir, from_ref="house@v2")
    assert third.version.meta.lineage == ["house@v1", "house@v2"] and third.replayed == 12


def test_a_worse_version_is_kept_but_not_activated(tmp_path, tiny_model_dir, write_jsonl, house_examples) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    held_out = write_jsonl(tmp_path / "eval.jsonl", house_examples(12)[8:])
    first = run(write_jsonl(tmp_path / "house.jsonl", house_examples(8)), registry, tiny_model_dir, eval_path=held_out)
    assert first.activated and first.gate is None  # nothing to compare with yet
    off_style = write_jsonl(tmp_path / "off.jsonl", _replies("Other", 8, "zq xv kk " * 12))
    config = TuneConfig(max_steps=6, batch_size=4, learning_rate=1e-2, gate="loss")
    second = tune(off_style, name="house", registry=registry, base_model_dir=tiny_model_dir, base_model_spec="tiny-spec",
                  config=config, eval_path=held_out)
    assert not second.activated and second.gate["passed"] is False and second.gate["against"] == "house@v1"
    assert "held-out loss" in second.gate["reasons"][0] and second.gate["new"]["style_score"] is None
    assert registry.resolve("house").ref == "house@v1" and registry.resolve("house@v2").meta.gate == second.gate
    # A version that is as good passes, with the style score measured too (the default gate).
    third = run(write_jsonl(tmp_path / "again.jsonl", house_examples(8)), registry, tiny_model_dir, eval_path=held_out)
    assert third.gate["mode"] == "loss+style" and third.gate["new"]["style_score"] is not None
    assert third.activated == third.gate["passed"] and registry.resolve("house").ref == (
        "house@v3" if third.activated else "house@v1"
    )


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, write_jsonl, house_examples) -> None:
    from tune.errors import TrainingInterrupted, TuneError

    registry = AdapterRegistry(tmp_path / "adapters")
    data = write_jsonl(tmp_path / "house.jsonl", house_examples(8))
    config = TuneConfig(epochs=3, batch_size=4, learning_rate=1e-2)  # 2 steps per epoch

    def stop_at_step_3(info: dict) -> None:
        if info.get("step") == 3:
            raise KeyboardInterrupt

    common = {"name": "house", "registry": registry, "base_model_dir": tiny_model_dir, "base_model_spec": "tiny-spec",
              "config": config}
    with pytest.raises(TrainingInterrupted, match="--resume"):
        tune(data, progress=stop_at_step_3, **common)
    assert registry.versions("house") == [] and [n for n, _ in registry.unfinished("house")] == [1]
    outcome = tune(data, resume=True, **common)
    assert outcome.version.ref == "house@v1" and outcome.result.resumed_from == 2 and outcome.result.steps == 6
    assert not (outcome.version.path / "checkpoint").exists()
    with pytest.raises(TuneError, match="nothing to resume"):
        tune(data, resume=True, **common)
