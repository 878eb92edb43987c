"""Lengths in the base model's tokens, from the tokenizer alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_llama import make_tiny_tokenizer
from tune import ModelNotFoundError, load_tokenizer
from tune.encode import encode_example
from tune.tokens import count_tokens, estimate_tokens

CONVERSATIONS = [
    [{"role": "user", "content": f"Question {i}: " + "tell me more " * i}, {"role": "assistant", "content": "Sure."}]
    for i in range(300)  # more than one batch
]


def test_counts_match_what_training_encodes() -> None:
    tokenizer = make_tiny_tokenizer()
    counted = count_tokens(tokenizer, CONVERSATIONS)
    assert counted == [len(encode_example(tokenizer, c, max_length=10**6).input_ids) for c in CONVERSATIONS]


def test_the_estimate_grows_with_the_text() -> None:
    short, long = estimate_tokens([CONVERSATIONS[1], CONVERSATIONS[200]])
    assert 0 < short < long and long >= len(CONVERSATIONS[200][0]["content"]) // 4


def test_a_model_directory_gives_its_tokenizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir, tmp_path)
    assert count_tokens(tokenizer, CONVERSATIONS[:3]) == count_tokens(make_tiny_tokenizer(), CONVERSATIONS[:3])


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="neither an existing directory nor a Hugging Face id"):
        load_tokenizer("./no-such-model", tmp_path)
    with pytest.raises(ModelNotFoundError, match="tokenizer of base model 'nobody/no-such-model'"):
        load_tokenizer("nobody/no-such-model", tmp_path)  # offline in tests: not in the local cache
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="cannot load the tokenizer"):
        load_tokenizer(empty, tmp_path)


@pytest.mark.slow
def test_the_embedded_tokenizer_is_extracted_once_without_weights(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(None, tmp_path)
    assert tokenizer.eos_token == "<|im_end|>"
    assert (tmp_path / "tokenizers" / "SmolLM2-135M-Instruct" / "tokenizer.json").is_file()
    assert not (tmp_path / "SmolLM2-135M-Instruct").exists()  # the model itself was not converted
    assert load_tokenizer("default", tmp_path).vocab_size == tokenizer.vocab_size
