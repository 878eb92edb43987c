"""Dataset checks run before training (``hybrid tune --check``): problems per line, plus advice.

Problems make a line unusable (``ok`` is false while any remain); warnings are the product's
guidance on dataset size and content, in plain words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune.data import Example, Problem, read_examples
from tune.encode import count_chat_tokens

# Below this many examples a LoRA adapter rarely learns a style reliably (see the warning text).
MIN_EXAMPLES = 500
# An output with fewer words than this is "very short"; warn when this share of outputs is.
SHORT_OUTPUT_WORDS = 5
SHORT_OUTPUT_SHARE = 0.2
# Warn when this share of outputs holds numbers or dates that their input does not.
FACT_LEAK_SHARE = 0.2
# Numbers of 2+ digits, with inner separators (1,250 / 3.5 / 2024-01-31 / 10:30). Single digits
# are left out: list markers ("1.", "2.") are style, not facts.
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")


@dataclass
class CheckReport:
    """The outcome of `check_examples`.

    Attributes:
        ok: true when no line has a problem.
        examples: usable examples (lines with problems are not counted).
        problems: one per unusable line, in file order.
        warnings: advice on the dataset as a whole; they never make ``ok`` false.
    """

    ok: bool
    examples: int
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``hybrid tune --check --json`` document."""
        return {
            "ok": self.ok,
            "examples": self.examples,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": list(self.warnings),
        }


def check_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    tokenizer: Any = None,
    max_tokens: int = 2048,
    input_column: str | None = None,
    output_column: str | None = None,
) -> CheckReport:
    """Validate example files without training.

    Args:
        paths: one example file or several (JSONL or CSV; see `read_examples`).
        tokenizer: a Hugging Face tokenizer with a chat template; when given, examples longer
            than ``max_tokens`` after templating are ``too_long`` problems.
        max_tokens: the longest allowed example, in tokens.
        input_column: the input field or CSV column; default: detected.
        output_column: the output field or CSV column; default: detected.

    Raises:
        DataError: a file is missing or unreadable as a whole.
    """
    return inspect_examples(
        paths, tokenizer=tokenizer, max_tokens=max_tokens, input_column=input_column, output_column=output_column
    )[1]


def inspect_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    tokenizer: Any = None,
    max_tokens: int = 2048,
    input_column: str | None = None,
    output_column: str | None = None,
) -> tuple[list[Example], CheckReport]:
    """`check_examples`, also returning the usable examples (what ``--force`` trains on)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    examples: list[Example] = []
    problems: list[Problem] = []
    for path in paths:
        found, bad = read_examples(path, input_column=input_column, output_column=output_column)
        if not found and not bad:
            bad = [Problem(0, "no_examples", f"{path} holds no examples; add one example per line", str(path))]
        examples += found
        problems += bad
    usable = []
    seen: dict[str, Example] = {}
    answered: dict[str, Example] = {}
    for example in examples:
        problem = _duplicate_or_conflict(example, seen, answered)
        if problem is None and tokenizer is not None:
            length = count_chat_tokens(tokenizer, example.messages)
            if length > max_tokens:
                problem = (
                    "too_long",
                    f"{length} tokens after the chat template, over the limit of {max_tokens}; shorten it or split it",
                )
        if problem is None:
            usable.append(example)
        else:
            problems.append(Problem(example.line, problem[0], problem[1], example.source))
    order = {str(Path(p)): i for i, p in enumerate(paths)}
    problems.sort(key=lambda p: (order.get(str(Path(p.source)), 0), p.line))
    report = CheckReport(ok=not problems, examples=len(usable), problems=problems, warnings=dataset_warnings(usable))
    return usable, report


def _duplicate_or_conflict(
    example: Example, seen: dict[str, Example], answered: dict[str, Example]
) -> tuple[str, str] | None:
    whole = json.dumps(example.messages, sort_keys=True)
    prompt = json.dumps(example.messages[:-1], sort_keys=True)
    if whole in seen:
        return "duplicate", f"exact duplicate of {_where(seen[whole], example)}; remove one of them"
    if example.messages[-1]["role"] == "assistant" and prompt in answered:
        return (
            "conflict",
            f"same input as {_where(answered[prompt], example)} but a different output; keep the better one",
        )
    seen[whole] = example
    answered.setdefault(prompt, example)
    return None


def _where(earlier: Example, later: Example) -> str:
    return f"line {earlier.line}" if earlier.source == later.source else f"{earlier.source} line {earlier.line}"


def dataset_warnings(examples: Sequence[Example]) -> list[str]:
    """Plain-words advice on a set of usable examples (size, short outputs, leaked facts)."""
    n = len(examples)
    if n == 0:
        return []
    warnings = []
    if n < MIN_EXAMPLES:
        warnings.append(
            f"only {n} examples: below about {MIN_EXAMPLES}, a LoRA adapter is unlikely to specialise meaningfully. "
            "500-2,000 good examples suit a house style or format; 5,000-50,000 are needed for a large change of "
            "behaviour. Quality beats quantity: fix or drop weak examples before adding more."
        )
    outputs = [_outputs(e) for e in examples]
    short = sum(1 for out in outputs if len(" ".join(out).split()) < SHORT_OUTPUT_WORDS)
    if short / n >= SHORT_OUTPUT_SHARE:
        warnings.append(
            f"{short} of {n} outputs ({short / n:.0%}) are very short (under {SHORT_OUTPUT_WORDS} words); the adapter "
            "will learn to answer tersely. If the house style is fuller, give complete answers."
        )
    leaks = [(e, sorted(_leaked_numbers(e))) for e in examples]
    leaks = [(e, found) for e, found in leaks if found]
    if len(leaks) / n >= FACT_LEAK_SHARE:
        first, found = leaks[0]
        warnings.append(
            f"{len(leaks)} of {n} outputs ({len(leaks) / n:.0%}) contain numbers or dates that are not in their input "
            f"(e.g. {first.source} line {first.line}: {', '.join(found[:3])}). Facts belong in retrieval, not the "
            "adapter: trained on them, it learns to invent figures. Keep outputs to what the input says and let the "
            "document index supply the facts."
        )
    return warnings


def _outputs(example: Example) -> list[str]:
    return [m["content"] for m in example.messages if m["role"] == "assistant"]


def _leaked_numbers(example: Example) -> set[str]:
    given = " ".join(m["content"] for m in example.messages if m["role"] != "assistant")
    given_numbers = _numbers([given])
    return {n for n in _numbers(_outputs(example)) if n not in given_numbers and n not in given}


def _numbers(texts: Iterable[str]) -> set[str]:
    found = set()
    for text in texts:
        for match in _NUMBER.findall(text):
            number = match.replace(",", "").rstrip(".")
            if sum(ch.isdigit() for ch in number) >= 2:
                found.add(number)
    return found
