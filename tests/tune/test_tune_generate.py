"""Generation: greedy, stops at the end-of-turn token, streams the same text."""

from __future__ import annotations

import threading
import time

import pytest

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


class _Gate:
    """A forward pre-hook that counts the model's forward passes and can hold them."""

    def __init__(self, generator: Generator) -> None:
        self.calls = 0
        self.open = threading.Event()
        self.open.set()
        self.handle = generator.model.register_forward_pre_hook(self)

    def __call__(self, module, args) -> None:
        self.calls += 1
        self.open.wait()


def _finishes(work, within_s: float = 60) -> list:
    """Runs ``work`` in a thread; its result, or a failure if it is still running after ``within_s``
    (a test that would otherwise hang on a lock held for good)."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(within_s)
    assert not thread.is_alive(), "still waiting for the model"
    return result


def test_a_stream_abandoned_unclosed_does_not_keep_the_model(tiny_model_dir) -> None:
    # A reader that stops reading and never closes its iterator (an HTTP client gone mid-stream)
    # must not keep the model from the next request.
    generator = Generator.load(tiny_model_dir)
    abandoned = generator.stream(QUESTION, max_new_tokens=40)
    next(abandoned)
    (result,) = _finishes(lambda: generator.generate(QUESTION, max_new_tokens=3))
    assert result.completion_tokens == 3
    assert abandoned is not None  # still referenced, still unclosed


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_cancel_stops_a_reply_at_the_next_token(tiny_model_dir, temperature) -> None:
    generator = Generator.load(tiny_model_dir)
    gate = _Gate(generator)
    cancel = threading.Event()
    gate.open.clear()
    replies = []
    worker = threading.Thread(target=lambda: replies.append(
        generator.generate(QUESTION, max_new_tokens=200, temperature=temperature, cancel=cancel)))
    worker.start()
    while gate.calls < 1:
        time.sleep(0.01)
    cancel.set()
    gate.open.set()
    worker.join(60)
    assert replies and replies[0].completion_tokens <= 1 and gate.calls <= 2
    # Cancelled before the model came free: nothing is generated at all.
    assert generator.generate(QUESTION, max_new_tokens=5, cancel=cancel).completion_tokens == 0
    streamed = list(generator.stream(QUESTION, max_new_tokens=5, temperature=temperature, cancel=cancel))
    assert streamed == []


def test_stalled_seconds_and_close(tiny_model_dir) -> None:
    generator = Generator.load(tiny_model_dir)
    assert generator.stalled_seconds() == 0.0
    gate = _Gate(generator)
    gate.open.clear()  # the next forward pass hangs: a stuck model
    stream = generator.stream(QUESTION, max_new_tokens=200)
    pieces = []
    reader = threading.Thread(target=lambda: pieces.extend(stream))
    reader.start()
    while gate.calls < 1:  # the reply took the model and is in its first forward pass
        time.sleep(0.01)
    time.sleep(0.3)
    assert generator.stalled_seconds() >= 0.3
    generator.close()  # a server shutting down: the reply ends at its next token
    gate.open.set()
    reader.join(60)
    assert not reader.is_alive() and gate.calls <= 2
    assert generator.stalled_seconds() == 0.0
    assert generator.generate(QUESTION, max_new_tokens=5).completion_tokens == 0  # closed for good
