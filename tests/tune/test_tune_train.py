"""A few LoRA steps on the tiny model: the loss falls, the adapter saves, loads and changes outputs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tune import DataError, Example, Generator, TuneConfig, load_model, train_adapter

QUESTION = [{"role": "user", "content": "Question 99: when will my refund arrive?"}]


def test_training_reduces_the_loss(trained) -> None:
    result, _, events = trained
    steps = [e for e in events if "step" in e]
    assert result.steps == 40 == len(steps) and steps[-1]["total"] == 40
    assert steps[-1]["loss"] < steps[0]["loss"] * 0.5
    assert result.eval_loss < result.base_eval_loss * 0.5
    assert result.train_loss == pytest.approx(sum(e["loss"] for e in steps[-4:]) / 4)  # last pass: 16 examples / 4
    assert result.epochs == 10.0 and result.tokens > 0 and result.warnings == []
    assert all(e["tokens_per_s"] > 0 for e in steps)


def test_adapter_is_saved_in_peft_format(trained) -> None:
    _, out, _ = trained
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["peft_type"] == "LORA"


def test_adapter_changes_outputs_and_learns_the_reply(trained, tiny_model_dir) -> None:
    _, out, _ = trained
    base = Generator.load(tiny_model_dir).generate(QUESTION, max_new_tokens=30)
    tuned = Generator.load(tiny_model_dir, out).generate(QUESTION, max_new_tokens=30)
    assert tuned.text != base.text
    assert "thank you" in tuned.text  # the house reply's words, never seen by the random base


def test_merged_and_unmerged_adapter_agree(trained, tiny_model_dir) -> None:
    _, out, _ = trained
    merged, tokenizer = load_model(tiny_model_dir, adapter_dir=out, merge=True)
    wrapped, _ = load_model(tiny_model_dir, adapter_dir=out, merge=False)
    base, _ = load_model(tiny_model_dir)
    ids = tokenizer("Question 1: when", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (merged, wrapped, base))
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-3)


def test_max_steps_stops_early_and_truncation_is_warned(tiny_model_dir, tmp_path) -> None:
    long_reply = "Thank you for your patience with this request. " * 20
    examples = [Example(({"role": "user", "content": f"Question {i}"}, {"role": "assistant", "content": long_reply}),
                        "mem", i + 1) for i in range(6)]
    config = TuneConfig(max_length=64, batch_size=2, max_steps=2)
    result = train_adapter(examples, tiny_model_dir, tmp_path / "a", config)
    assert result.steps == 2 and result.epochs == pytest.approx(2 / 3)
    assert result.eval_loss is None and result.base_eval_loss is None
    assert any("longer than max_length=64" in w for w in result.warnings)


def test_nothing_to_learn_is_an_error(tiny_model_dir, tmp_path) -> None:
    messages = ({"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok then"})
    examples = [Example(messages, "m", 1)]
    with pytest.raises(DataError, match="no training example"):
        train_adapter(examples, tiny_model_dir, tmp_path / "a", TuneConfig(max_length=32))


def test_micro_batches_give_the_same_steps_as_whole_batches(tiny_model_dir, tmp_path, house_examples) -> None:
    from tune import read_examples

    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in house_examples(8)) + "\n")
    examples, _ = read_examples(path)
    runs = []
    for budget in (10_000, 16):  # one pass per batch vs one example per pass
        events: list[dict] = []
        # No dropout: its random masks depend on tensor shapes, so they differ between the runs.
        # float32: bfloat16 rounding depends on the shapes too.
        config = TuneConfig(
            batch_size=4, epochs=2, max_steps=3, learning_rate=1e-2, dropout=0.0, micro_batch_tokens=budget,
            dtype="float32",
        )
        train_adapter(examples, tiny_model_dir, tmp_path / str(budget), config, progress=events.append)
        runs.append([e["loss"] for e in events if "step" in e])
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)


def test_loss_on_labelled_positions_only_equals_the_full_loss(tiny_model_dir) -> None:
    from tune.batching import collate, summed_loss
    from tune.encode import IGNORE, encode_example

    model, tokenizer = load_model(tiny_model_dir)
    items = [
        encode_example(tokenizer, ({"role": "user", "content": "Question about my refund " * (i + 1)},
                                   {"role": "assistant", "content": "Thank you, dear customer. " * (3 - i)}), 512)
        for i in range(3)
    ]
    batch = collate(items, tokenizer.pad_token_id)
    loss, count = summed_loss(model, batch)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
    assert count == int(keep.sum()) > 0
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_the_thread_setting_is_given_back(tiny_model_dir, tmp_path) -> None:
    before = torch.get_num_threads()
    messages = ({"role": "user", "content": "Question"}, {"role": "assistant", "content": "Thank you."})
    config = TuneConfig(max_steps=1, threads=1)
    assert train_adapter([Example(messages, "m", 1)], tiny_model_dir, tmp_path / "a", config).steps == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_both_number_formats_train_and_write_metrics(tiny_model_dir, tmp_path, dtype) -> None:
    examples = [Example(({"role": "user", "content": f"Question {i}: refund?"},
                         {"role": "assistant", "content": "Thank you. Your refund is on its way."}), "mem", i + 1)
                for i in range(8)]
    config = TuneConfig(batch_size=4, epochs=3, learning_rate=1e-2, dtype=dtype)
    result = train_adapter(examples, tiny_model_dir, tmp_path / "a", config, eval_examples=examples[:2])
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["dtype"] == dtype and len(metrics["steps"]) == 6
    assert metrics["eval_loss"] == result.eval_loss < result.base_eval_loss
    assert metrics["tokens_per_s"] > 0 and metrics["train_tokens"] == result.tokens
    assert (tmp_path / "a" / "loss.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert saved["r"] == 8  # the adapter itself stays float32 and loads as usual
    assert Generator.load(tiny_model_dir, tmp_path / "a").generate(QUESTION, max_new_tokens=5).text is not None


def test_early_stopping_keeps_the_best_epoch(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import tune.train

    scripted = iter([2.0, 1.0, 1.5, 1.6, 1.7])  # base model, epochs 1-3, then the final check
    monkeypatch.setattr(tune.train, "evaluate", lambda *args, **kwargs: next(scripted))
    kept = []
    real_state = tune.train._trainable_state
    monkeypatch.setattr(tune.train, "_trainable_state", lambda model: kept.append(real_state(model)) or kept[-1])
    examples = [Example(({"role": "user", "content": f"Question {i}"},
                         {"role": "assistant", "content": "Thank you for asking."}), "mem", i + 1) for i in range(8)]
    config = TuneConfig(batch_size=4, epochs=10, learning_rate=1e-2, patience=2)
    result = train_adapter(examples, tiny_model_dir, tmp_path / "a", config, eval_examples=examples[:2])
    assert result.steps == 6  # 3 epochs of 2 steps, then stopped
    assert result.eval_loss == 1.0 and any("stopped early after epoch 3" in w for w in result.warnings)
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["epoch_eval_losses"] == [1.0, 1.5, 1.6, 1.7]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    best = {k.replace(".default", ""): v for k, v in kept[0].items()}
    name = next(iter(saved))
    assert torch.equal(saved[name].float(), best[name].float())  # the epoch-1 weights were saved


def test_a_failed_loss_curve_is_a_warning_not_a_failed_run(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import tune.train

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tune.train, "write_loss_curve", fail)
    messages = ({"role": "user", "content": "Question"}, {"role": "assistant", "content": "Thank you."})
    result = train_adapter([Example(messages, "m", 1)], tiny_model_dir, tmp_path / "a", TuneConfig(max_steps=1))
    assert any("loss.png was not drawn: disk full" in w for w in result.warnings)
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file() and not (tmp_path / "a" / "loss.png").exists()


def test_compilation_is_chosen_for_long_runs_only(monkeypatch) -> None:
    from tune import train

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/g++")
    assert train._compiles("auto", train.COMPILE_MIN_STEPS) and not train._compiles("auto", train.COMPILE_MIN_STEPS - 1)
    assert train._compiles("on", 1) and not train._compiles("off", 10_000)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no C++ compiler: stay eager
    assert not train._compiles("auto", 10_000)


@pytest.mark.slow
def test_compiled_layers_train_the_same_adapter(tiny_model_dir, tmp_path, house_examples) -> None:
    from tune import read_examples

    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in house_examples(8)) + "\n")
    examples, _ = read_examples(path)
    runs = {}
    for mode in ("off", "on"):
        events: list[dict] = []
        config = TuneConfig(batch_size=4, max_steps=3, learning_rate=1e-2, dtype="float32", compile=mode)
        result = train_adapter(examples, tiny_model_dir, tmp_path / mode, config, eval_examples=examples[:2],
                               progress=events.append)
        runs[mode] = ([e["loss"] for e in events if "step" in e], result.eval_loss)
    assert runs["on"][0] == pytest.approx(runs["off"][0], rel=1e-3)
    assert runs["on"][1] == pytest.approx(runs["off"][1], rel=1e-3)
