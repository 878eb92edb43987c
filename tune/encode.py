"""Chat examples -> token ids and training labels (private to the package; no torch needed).

Only the assistant's words and the end-of-turn token that closes each assistant turn are
learnt: every other label is -100, the index PyTorch's cross-entropy ignores. Learning the
end-of-turn token is what teaches the adapter to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tune.errors import TuneError

IGNORE = -100  # label of tokens that carry no loss (torch.nn.functional.cross_entropy's default)


@dataclass(frozen=True)
class Encoded:
    """One tokenised example.

    Attributes:
        input_ids: token ids of the whole templated conversation (cut to ``max_length``).
        labels: the same ids where the model should learn them, `IGNORE` elsewhere.
        truncated: whether tokens were cut off the end.
    """

    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trainable(self) -> int:
        """How many tokens carry loss (0: the example teaches nothing)."""
        return sum(1 for label in self.labels if label != IGNORE)


def render(tokenizer: Any, messages: Sequence[dict], *, add_generation_prompt: bool = False) -> str:
    """The conversation as the tokenizer's chat template writes it.

    Raises:
        TuneError: the tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise TuneError("the base model's tokenizer has no chat template; use an instruction-tuned (chat) model")
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def count_chat_tokens(tokenizer: Any, messages: Sequence[dict]) -> int:
    """Length of the templated conversation, in tokens."""
    return len(tokenizer(render(tokenizer, messages), add_special_tokens=False)["input_ids"])


def encode_example(tokenizer: Any, messages: Sequence[dict], max_length: int) -> Encoded:
    """Tokenise a conversation and label its assistant turns.

    Args:
        tokenizer: a fast Hugging Face tokenizer with a chat template.
        messages: the conversation (see `Example.messages`).
        max_length: tokens kept; the rest of a longer conversation is cut off.

    Raises:
        TuneError: no chat template, or the template rewrites assistant text beyond recognition.
    """
    text = render(tokenizer, messages)
    try:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as exc:  # slow (Python) tokenizers have no offsets
        raise TuneError("training needs a fast tokenizer (tokenizer.json); the base model has only a slow one") from exc
    ids = list(encoding["input_ids"])
    offsets = encoding["offset_mapping"]
    spans = assistant_spans(tokenizer, messages, text)
    labels = [IGNORE] * len(ids)
    for index, (start, _end) in enumerate(offsets):
        # Token start, not span containment: a zero-width token still has a position.
        if any(a <= start < b for a, b in spans):
            labels[index] = ids[index]
    truncated = len(ids) > max_length
    return Encoded(ids[:max_length], labels[:max_length], truncated)


def assistant_spans(tokenizer: Any, messages: Sequence[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` holding each assistant reply plus its end-of-turn token.

    The templated prefix up to each reply (``messages[:i]`` with the generation prompt) tells
    where the reply starts, so a reply that repeats the question is not found in the question.
    """
    spans = []
    cursor = 0
    end_tokens = _special_tokens(tokenizer)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:index], add_generation_prompt=True)
        if text.startswith(prefix):
            cursor = max(cursor, len(prefix))
        content = message["content"]
        start = text.find(content, cursor)
        if start < 0:  # some templates trim message content
            content = content.strip()
            start = text.find(content, cursor)
        if start < 0:
            raise TuneError(
                f"the chat template rewrites assistant message {index + 1}, so its tokens cannot be located; "
                "use a base model whose template keeps message text as is"
            )
        end = start + len(content)
        rest = text[end:]
        gap = len(rest) - len(rest.lstrip())
        closing = next((tok for tok in end_tokens if rest[gap:].startswith(tok)), None)
        if closing is not None:
            end += gap + len(closing)
        spans.append((start, end))
        cursor = end
    return spans


def _special_tokens(tokenizer: Any) -> list[str]:
    # The end-of-turn marker is the template's own (<|im_end|>, <|eot_id|>, <end_of_turn>, </s>),
    # not necessarily eos_token, so any special token right after the reply counts.
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values():
        if getattr(added, "special", False):
            found.add(str(added.content))
    if getattr(tokenizer, "eos_token", None):
        found.add(tokenizer.eos_token)
    return sorted((t for t in found if t), key=len, reverse=True)  # longest first: no prefix clash
