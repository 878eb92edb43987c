"""Generation: greedy, stops at the end-of-turn token, streams the same text."""

from __future__ import annotations

from tune import Generator

QUESTION = [{"role": "user", "content": "Question 7: when will my refund arrive?"}]


def test_generation_stops_at_the_end_of_turn(trained, tiny_model_dir) -> None:
    _, out, _ = trained
    generator = Generator.load(tiny_model_dir, out)
    result = generator.generate(QUESTION, max_new_tokens=60)
    assert 0 < result.completion_tokens < 60  # the adapter learnt to close its turn
    assert result.prompt_tokens > 5 and result.seconds > 0
    assert "<|im_end|>" not in result.text and result.text == result.text.strip()
    assert generator.generate(QUESTION, max_new_tokens=60).text == result.text  # greedy is deterministic
    assert generator.adapter_dir == out and generator.model_dir == tiny_model_dir


def test_stream_yields_the_same_text(trained, tiny_model_dir) -> None:
    _, out, _ = trained
    generator = Generator.load(tiny_model_dir, out)
    pieces = list(generator.stream(QUESTION, max_new_tokens=60))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == generator.generate(QUESTION, max_new_tokens=60).text


def test_closing_a_stream_early_frees_the_generator(tiny_model_dir) -> None:
    generator = Generator.load(tiny_model_dir)
    stream = generator.stream(QUESTION, max_new_tokens=200)
    next(stream)
    stream.close()  # stops the worker thread and releases the lock
    assert generator.generate(QUESTION, max_new_tokens=3).completion_tokens <= 3


def test_sampling_and_token_counts(tiny_model_dir) -> None:
    generator = Generator.load(tiny_model_dir)
    assert generator.generate(QUESTION, max_new_tokens=5, temperature=0.8).completion_tokens <= 5
    expected = len(generator.tokenizer("thank you", add_special_tokens=False)["input_ids"])
    assert generator.count_tokens("thank you") == expected > 0
    assert generator.count_tokens("") == 0
