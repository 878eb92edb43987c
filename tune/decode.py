"""Greedy decoding with a KV cache, without `generate`'s per-token machinery.

`transformers`' `generate` rebuilds its inputs, masks and logits processors for every token;
on a 135M model on two CPU cores that bookkeeping is a measurable share of each step. This loop
does only what greedy decoding needs: one forward per token over the cached keys and values,
the repetition penalty, argmax, stop at an end-of-turn id. It picks the same tokens as
``generate(do_sample=False, repetition_penalty=p)``: the penalty and the float32 logits are
computed as `RepetitionPenaltyLogitsProcessor` and greedy search compute them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import DynamicCache


def greedy_tokens(
    model: Any,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    repetition_penalty: float = 1.0,
) -> Iterator[tuple[int, float]]:
    """Yield ``(token, seconds)`` for each new token of the greedy continuation of ``input_ids``.

    Args:
        model: a causal LM in eval mode that accepts ``past_key_values``.
        input_ids: the prompt, shape (1, length).
        max_new_tokens: the most tokens to yield.
        stop_ids: the first of these ends the continuation (it is yielded too).
        repetition_penalty: divides positive and multiplies negative logits of every token
            already in the sequence, prompt included; 1.0 leaves logits alone.

    The caller runs this under ``torch.inference_mode()``; closing the iterator early stops
    decoding at once. ``seconds`` is the wall time since the previous yield (the first one
    includes the prefill).
    """
    stops = set(stop_ids)
    cache = {_cache_keyword(model): _new_cache(model)}
    # The tokens seen so far, as a mask over the vocabulary, for the repetition penalty.
    seen = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    seen[input_ids[0]] = True
    step = input_ids
    started = time.perf_counter()
    for _ in range(max_new_tokens):
        # logits_to_keep=1: the prefill needs the lm_head on the last position only.
        logits = model(input_ids=step, **cache, use_cache=True, logits_to_keep=1).logits
        token = pick(logits[0, -1], seen, repetition_penalty)
        now = time.perf_counter()
        yield token, now - started
        started = time.perf_counter()
        if token in stops:
            return
        seen[token] = True
        step = torch.tensor([[token]], dtype=input_ids.dtype)


def pick(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> int:
    """The greedy choice from one position's ``logits``: the repetition penalty over every token
    marked in ``seen`` (positive logits divided, negative ones multiplied), then argmax."""
    scores = logits.to(torch.float32)
    if penalty != 1.0:
        penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
        scores = torch.where(seen, penalised, scores)
    return int(scores.argmax())


def _cache_keyword(model: Any) -> str:
    # transformers 5.24 renamed forward's past_key_values to cache (the old name warns).
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _new_cache(model: Any) -> DynamicCache:
    # A config lets transformers 5 lay out per-layer caches (sliding windows); 4.x takes none.
    if "config" in inspect.signature(DynamicCache).parameters:
        return DynamicCache(config=model.config)
    return DynamicCache()
