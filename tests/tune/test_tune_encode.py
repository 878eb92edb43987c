"""Label masks: exactly the assistant replies and the end-of-turn token that closes each."""

from __future__ import annotations

import pytest

from tests.support.tiny_llama import make_tiny_tokenizer
from tune.encode import IGNORE, encode_example

CONVERSATION = (
    {"role": "system", "content": "Answer in the house style."},
    {"role": "user", "content": "Thank you"},
    {"role": "assistant", "content": "Thank you"},  # repeats the question: must not be found there
    {"role": "user", "content": "What is the refund date for order 1234?"},
    {"role": "assistant", "content": "Dear customer,\n\nthe refund arrives on 2.5.2024."},
)


def learnt_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE])


def check_mask(tokenizer) -> None:
    encoded = encode_example(tokenizer, CONVERSATION, max_length=4096)
    end = tokenizer.eos_token
    assert learnt_text(tokenizer, encoded) == f"Thank you{end}Dear customer,\n\nthe refund arrives on 2.5.2024.{end}"
    # The learnt labels are the input ids themselves (the model shifts them internally).
    assert all(label in (IGNORE, token) for token, label in zip(encoded.input_ids, encoded.labels))
    assert not encoded.truncated


def test_mask_on_the_tiny_tokenizer() -> None:
    check_mask(make_tiny_tokenizer())


def test_truncation_keeps_the_start_and_says_so() -> None:
    tokenizer = make_tiny_tokenizer()
    full = encode_example(tokenizer, CONVERSATION, max_length=4096)
    cut = encode_example(tokenizer, CONVERSATION, max_length=20)
    assert cut.truncated and cut.input_ids == full.input_ids[:20]
    assert cut.trainable == 0  # the replies start after token 20: nothing left to learn


def test_prompt_only_conversation_has_nothing_to_learn() -> None:
    tokenizer = make_tiny_tokenizer()
    encoded = encode_example(tokenizer, CONVERSATION[:2], max_length=4096)
    assert encoded.trainable == 0


@pytest.mark.slow
def test_mask_on_the_real_smollm2_tokenizer(smollm2_dir) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tokenizer.eos_token == "<|im_end|>"
    check_mask(tokenizer)


@pytest.mark.parametrize("system", [None, "Answer in the house style."])
def test_a_multi_turn_chat_file_learns_every_assistant_turn(tmp_path, write_jsonl, system) -> None:
    from tune import read_examples

    turns = [{"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": "It left today."},
             {"role": "user", "content": "When will it arrive?"}, {"role": "assistant", "content": "Within two days."}]
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    (example,), problems = read_examples(write_jsonl(tmp_path / "chat.jsonl", [{"messages": messages}]))
    assert problems == [] and [m["role"] for m in example.messages][-4:] == ["user", "assistant"] * 2
    tokenizer = make_tiny_tokenizer()
    encoded = encode_example(tokenizer, example.messages, max_length=4096)
    end = tokenizer.eos_token
    assert learnt_text(tokenizer, encoded) == f"It left today.{end}Within two days.{end}"
