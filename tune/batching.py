"""Tokenised examples -> padded batches grouped by length (private to the package)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tune.data import Example
from tune.encode import IGNORE, Encoded, encode_example

# Batches are cut from windows of this many batches' worth of examples sorted by length: most
# of the padding saving of a global sort, while batch composition still changes every epoch.
_WINDOW_BATCHES = 50


def encode_all(
    tokenizer: Any, examples: Sequence[Example], max_length: int, what: str
) -> tuple[list[Encoded], list[str]]:
    """Encode examples, dropping those with nothing to learn.

    Args:
        what: "training" or "evaluation", for the warnings.

    Returns:
        The usable encodings and plain-words warnings (truncated or skipped examples).
    """
    encoded, truncated, empty = [], [], []
    for example in examples:
        item = encode_example(tokenizer, example.messages, max_length)
        if item.truncated:
            truncated.append(example)
        if item.trainable == 0:
            empty.append(example)
        else:
            encoded.append(item)
    warnings = []
    if truncated:
        warnings.append(
            f"{len(truncated)} {what} examples are longer than max_length={max_length} tokens and were cut "
            f"(first: {_where(truncated[0])}); cut replies do not teach the adapter to stop. "
            "Raise max_length or shorten them."
        )
    if empty:
        warnings.append(
            f"{len(empty)} {what} examples were skipped: nothing of the reply fits in max_length={max_length} tokens "
            f"(first: {_where(empty[0])})"
        )
    return encoded, warnings


def _where(example: Example) -> str:
    return f"{example.source} line {example.line}"


def length_grouped_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Index batches of similar lengths, in a random order drawn from ``generator``."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * _WINDOW_BATCHES
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def micro_batches(items: Sequence[Encoded], max_tokens: int) -> list[list[Encoded]]:
    """Split items into groups whose padded size (count x longest) stays within ``max_tokens``.

    An item longer than ``max_tokens`` gets a group of its own.
    """
    groups: list[list[Encoded]] = []
    for item in sorted(items, key=lambda it: len(it.input_ids), reverse=True):
        # Sorted longest first, so a group's first item sets its padded width.
        if groups and (len(groups[-1]) + 1) * len(groups[-1][0].input_ids) <= max_tokens:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def target_count(items: Sequence[Encoded]) -> int:
    """Tokens that carry loss (a label at position 0 has no preceding token to predict it from)."""
    return sum(sum(1 for label in item.labels[1:] if label != IGNORE) for item in items)


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def summed_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the labelled tokens, and how many there are.

    Summing (not averaging) lets evaluation weight every token equally across batches.
    """
    device = next(model.parameters()).device
    batch = {name: tensor.to(device) for name, tensor in batch.items()}  # collate builds on the CPU
    targets = batch["labels"][:, 1:]  # the logit at position t predicts token t + 1
    keep = targets != IGNORE
    # Most of a sequence is prompt: asking only for the logits at positions that carry a label
    # skips most of the output-head matmul (~20% of a small model's compute) and its memory.
    positions = keep.any(dim=0).nonzero().squeeze(1)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
    try:
        logits = model(**inputs, logits_to_keep=positions).logits
    except TypeError:  # a model without logits_to_keep: all positions, then pick
        logits = model(**inputs).logits[:, :-1][:, positions]
    if logits.shape[1] != len(positions):  # ignored the argument: same fallback
        logits = logits[:, :-1][:, positions]
    targets, keep = targets[:, positions], keep[:, positions]
    loss = torch.nn.functional.cross_entropy(logits[keep].float(), targets[keep], reduction="sum")
    return loss, int(keep.sum())
