"""The greedy decoding loop picks the tokens plain `generate` picks with the unmerged adapter."""

from __future__ import annotations

import pytest
import torch

from tune import Generator, load_model
from tune.decode import greedy_tokens

QUESTIONS = [
    [{"role": "user", "content": "Question 7: when will my refund arrive?"}],
    [{"role": "user", "content": "Question 2: can I change my delivery address?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Why was I charged twice?"}],
]


def _reference(model, tokenizer, input_ids: torch.Tensor, stop_ids: list[int], penalty: float, limit: int) -> list[int]:
    """What transformers' generate returns: greedy, the penalty processor, the stop ids."""
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=limit,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=penalty,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = output[0, input_ids.shape[1] :].tolist()
    return new[: next((i + 1 for i, token in enumerate(new) if token in stop_ids), len(new))]


@pytest.mark.parametrize("penalty", [1.0, 1.1, 1.5])
def test_merged_greedy_loop_matches_generate_with_the_unmerged_adapter(trained, tiny_model_dir, penalty) -> None:
    _, out, _ = trained
    generator = Generator.load(tiny_model_dir, out)
    unmerged, tokenizer = load_model(tiny_model_dir, adapter_dir=out, merge=False)
    assert type(unmerged).__name__.startswith("PeftModel")  # the reference really runs PEFT's LoRA layers
    for messages in QUESTIONS:
        input_ids = generator._inputs(messages)["input_ids"]
        expected = _reference(unmerged, tokenizer, input_ids, generator._stop_ids, penalty, 40)
        with torch.inference_mode():
            produced = greedy_tokens(
                generator.model,
                input_ids,
                max_new_tokens=40,
                stop_ids=generator._stop_ids,
                repetition_penalty=penalty,
            )
            got = [token for token, _ in produced]
        assert got == expected
        assert len(got) > 3  # long enough for the cache and the penalty to matter


def test_the_loop_matches_generate_without_stopping(tiny_model_dir) -> None:
    # The base model rarely closes its turn; 50 tokens exercise a long cache.
    generator = Generator.load(tiny_model_dir)
    input_ids = generator._inputs(QUESTIONS[0])["input_ids"]
    expected = _reference(generator.model, generator.tokenizer, input_ids, [10**6], 1.1, 50)
    with torch.inference_mode():
        got = [token for token, _ in greedy_tokens(generator.model, input_ids, max_new_tokens=50, stop_ids=[], repetition_penalty=1.1)]
    assert got == expected and len(got) == 50


def test_generate_stops_at_the_end_of_turn_and_streams_the_same_text(trained, tiny_model_dir) -> None:
    _, out, _ = trained
    generator = Generator.load(tiny_model_dir, out)
    result = generator.generate(QUESTIONS[0], max_new_tokens=60)  # the question the adapter learnt
    with torch.inference_mode():
        ids = [token for token, _ in generator._greedy(generator._inputs(QUESTIONS[0]), 60, 1.1)]
    assert ids[-1] in generator._stop_ids and len(ids) == result.completion_tokens < 60
    assert 0 < result.first_token_seconds <= result.seconds
    for messages in QUESTIONS:
        result = generator.generate(messages, max_new_tokens=60)
        assert "".join(generator.stream(messages, max_new_tokens=60)).strip() == result.text


def test_streaming_holds_back_a_split_character(tiny_model_dir, monkeypatch) -> None:
    # A multi-byte character spread over two tokens decodes to U+FFFD until its second token
    # arrives; the stream must not send the replacement character.
    generator = Generator.load(tiny_model_dir)
    tokenizer = generator.tokenizer
    texts = {(): "", (1,): "Hi \ufffd", (1, 2): "Hi é", (1, 2, 3): "Hi é ok"}
    monkeypatch.setattr(generator, "_greedy", lambda *a: (item for item in [(1, 0.1), (2, 0.1), (3, 0.1)]))
    monkeypatch.setattr(tokenizer, "decode", lambda ids, **k: texts[tuple(ids)])
    assert list(generator.stream(QUESTIONS[0], max_new_tokens=3)) == ["Hi é", " ok"]
