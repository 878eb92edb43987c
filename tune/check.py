"""Dataset checks run before training (``hybrid tune --check``, and first thing in ``hybrid tune``).

Three kinds of line, each naming its file and line:

- problems (errors) make a line unusable and ``ok`` false: malformed JSON, an unknown format,
  wrong roles, a missing or empty output or input, an exact duplicate, the same input with a
  different output. ``hybrid tune`` refuses them unless ``--force``, which skips those lines.
- skipped lines are longer than training keeps (measured in the base model's tokens): training
  leaves them out and goes on with the rest, with one warning naming them (a cut reply would
  not teach the adapter where to stop). Only when no example fits is that an error
  (``all_too_long``: nothing to train on).
- line warnings flag lines worth a look that still train: near duplicates, the same input up
  to case and punctuation with another output, the outputs that leak the most facts, and
  (without the tokenizer) examples estimated to be too long.

Warnings apply the guidance to the dataset as a whole (size, short outputs, the share of
outputs with leaked facts); they never make ``ok`` false.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune import advice
from tune.config import TuneConfig
from tune.data import Example, Problem, read_examples
from tune.errors import TuneError
from tune.leaks import find_leaks
from tune.similarity import near_duplicates, words
from tune.tokens import CHARS_PER_TOKEN, count_tokens, estimate_tokens

NEAR_DUPLICATE = 0.9  # least Jaccard similarity of word 3-grams (input + output) that counts
WORST_LEAKS = 10  # leaking lines listed as line warnings, most facts first
WORST_IN_WARNING = 3  # of which the warning sentence names this many
COMMON_FACTS = 5  # the facts leaked most often (by two outputs or more), named with their counts
LISTED_LINES = 8  # lines a summary warning names before "..."


@dataclass
class CheckReport:
    """The outcome of `check_examples`.

    Attributes:
        ok: true when no line has a problem (an error).
        examples: usable examples (lines with problems are not counted).
        problems: errors, one per unusable line, in file order.
        skipped: ``too_long`` lines, longer than training keeps: left out of training, not
            errors (same fields as problems, in file order).
        warnings: advice on the dataset as a whole; they never make ``ok`` false.
        line_warnings: lines worth a look that still train, in file order (same fields as problems).
        size: where the number of usable examples stands on the guidance scale.
        lengths: ``{"unit", "tokenizer", "limit", "longest", "median", "over_limit"}`` of the
            examples; unit "tokens" (measured) or "estimated tokens" (from characters).
        fact_leak: ``{"share", "examples", "common": [{"fact", "examples"}],
            "worst": [{"source", "line", "facts"}]}``: the share of outputs stating facts absent
            from their input, the facts leaked most often, and the lines leaking the most.
        seconds: how long the check took.
    """

    ok: bool
    examples: int
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    line_warnings: list[Problem] = field(default_factory=list)
    size: str = ""
    lengths: dict[str, Any] | None = None
    fact_leak: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``hybrid tune --check --json`` document."""
        return {
            "ok": self.ok,
            "examples": self.examples,
            "problems": [p.to_dict() for p in self.problems],
            "skipped": [p.to_dict() for p in self.skipped],
            "warnings": list(self.warnings),
            "line_warnings": [p.to_dict() for p in self.line_warnings],
            "size": self.size,
            "lengths": self.lengths,
            "fact_leak": self.fact_leak,
            "seconds": round(self.seconds, 2),
        }


def check_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    tokenizer: Any = None,
    tokenizer_name: str | None = None,
    why_no_tokenizer: str | None = None,
    max_tokens: int = TuneConfig.max_length,
    input_column: str | None = None,
    output_column: str | None = None,
) -> CheckReport:
    """Validate example files without training.

    Args:
        paths: one example file or several (JSONL or CSV; see `read_examples`).
        tokenizer: the base model's tokenizer (see `tune.load_tokenizer`); examples longer than
            ``max_tokens`` after its chat template are ``too_long`` skipped lines (an
            ``all_too_long`` problem when none fits). Without it, lengths are estimated from
            characters and only flagged as ``maybe_too_long``.
        tokenizer_name: what to call the tokenizer in messages (the base model's name).
        why_no_tokenizer: why there is none, for the note saying lengths are estimated.
        max_tokens: the longest example training keeps (`TuneConfig.max_length`), in tokens.
        input_column: the input field or CSV column; default: detected.
        output_column: the output field or CSV column; default: detected.

    Raises:
        DataError: a file is missing or unreadable as a whole.
    """
    return inspect_examples(
        paths, tokenizer=tokenizer, tokenizer_name=tokenizer_name, why_no_tokenizer=why_no_tokenizer,
        max_tokens=max_tokens, input_column=input_column, output_column=output_column,
    )[1]


def inspect_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    tokenizer: Any = None,
    tokenizer_name: str | None = None,
    why_no_tokenizer: str | None = None,
    max_tokens: int = TuneConfig.max_length,
    input_column: str | None = None,
    output_column: str | None = None,
) -> tuple[list[Example], CheckReport]:
    """`check_examples`, also returning the usable examples (what training uses).

    Over-long examples are never among them; lines with problems are not either (``--force``
    trains on the usable ones despite those).
    """
    started = time.perf_counter()
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    examples: list[Example] = []
    problems: list[Problem] = []
    for path in paths:
        found, bad = read_examples(path, input_column=input_column, output_column=output_column)
        if not found and not bad:
            bad = [Problem(0, "no_examples", f"{path} holds no examples; add one example per line", str(path))]
        examples += found
        problems += bad
    flagged: list[Problem] = []
    skipped: list[Problem] = []
    kept, loose = _without_repeats(examples, problems)
    warnings: list[str] = []
    measure = _Measure(tokenizer, tokenizer_name, why_no_tokenizer, max_tokens)
    usable, lengths = _within_length(kept, measure, skipped, flagged, warnings)
    if skipped and not usable:
        problems.append(Problem(0, "all_too_long", (
            f"every example that passed the other checks is longer than {max_tokens:,} tokens ({len(skipped):,} "
            "skipped), so nothing is left to train on; shorten or split them, or raise --max-length"
        ), skipped[0].source))
    _near_repeats(usable, loose, flagged, warnings)
    leak_summary = _fact_leaks(usable, flagged, warnings)
    if short := advice.short_output_warning([" ".join(_outputs(e)) for e in usable]):
        warnings.insert(0, short)
    if usable and (size := advice.size_warning(len(usable))):
        warnings.insert(0, size)
    order = {str(Path(p)): i for i, p in enumerate(paths)}

    def in_file_order(problem: Problem) -> tuple[int, int]:
        return order.get(str(Path(problem.source)), 0), problem.line

    report = CheckReport(
        ok=not problems,
        examples=len(usable),
        problems=sorted(problems, key=in_file_order),
        skipped=sorted(skipped, key=in_file_order),
        warnings=warnings,
        line_warnings=sorted(flagged, key=in_file_order),
        size=advice.size_guidance(len(usable)) if usable else "no usable examples",
        lengths=lengths,
        fact_leak=leak_summary,
        seconds=time.perf_counter() - started,
    )
    return usable, report


def _without_repeats(examples: list[Example], problems: list[Problem]) -> tuple[list[Example], dict[int, Example]]:
    """Drop exact duplicates and same-input conflicts (errors).

    Returns:
        The other examples, and ``{id(example): earlier}`` for each whose input equals an
        earlier one's apart from case, spacing and punctuation, with another output.
    """
    kept = []
    seen: dict[str, Example] = {}
    answered: dict[str, Example] = {}
    loosely: dict[str, Example] = {}
    loose: dict[int, Example] = {}
    for example in examples:
        whole = json.dumps(example.messages, sort_keys=True)
        prompt = json.dumps(example.messages[:-1], sort_keys=True)
        if whole in seen:
            problems.append(_at(example, "duplicate", f"exact duplicate of {_where(seen[whole], example)}; remove one of them"))
            continue
        if prompt in answered:
            problems.append(_at(example, "conflict", (
                f"same input as {_where(answered[prompt], example)} but a different output; keep the better one"
            )))
            continue
        seen[whole] = example
        answered[prompt] = example
        kept.append(example)
        loose_prompt = " ".join(words(" ".join(m["content"] for m in example.messages[:-1])))
        if loose_prompt in loosely:
            loose[id(example)] = loosely[loose_prompt]
        else:
            loosely[loose_prompt] = example
    return kept, loose


@dataclass(frozen=True)
class _Measure:
    tokenizer: Any
    name: str | None
    why_not: str | None
    limit: int


def _within_length(
    kept: list[Example], measure: _Measure, skipped: list[Problem], flagged: list[Problem], warnings: list[str]
) -> tuple[list[Example], dict[str, Any] | None]:
    """Measure every example; over-long ones are skipped (measured) or line warnings (estimated)."""
    if not kept:
        return kept, None
    max_tokens, why_not, lengths = measure.limit, measure.why_not, None
    if measure.tokenizer is not None:
        try:
            lengths = count_tokens(measure.tokenizer, [e.messages for e in kept])
        except TuneError as exc:  # no chat template: training refuses this base model too
            why_not = str(exc)
    measured = lengths is not None
    if not measured:
        lengths = estimate_tokens([e.messages for e in kept])
        warnings.append(
            f"lengths are estimated from characters (about {CHARS_PER_TOKEN} per token), so over-long examples are "
            f"flagged, not refused: {why_not or 'no tokenizer was given'}"
        )
    template = "the chat template"  # the tokenizer's name is in the report's lengths
    usable = []
    for example, length in zip(kept, lengths):
        if length <= max_tokens:
            usable.append(example)
        elif measured:
            skipped.append(_at(example, "too_long", (
                f"{length:,} tokens after {template}, over the limit of {max_tokens:,}: training skips it (it would "
                "cut its end off); shorten or split it, or raise --max-length"
            )))
        else:
            usable.append(example)
            flagged.append(_at(example, "maybe_too_long", (
                f"about {length:,} tokens (estimated from characters), over the limit of {max_tokens:,}: training "
                "would cut its end off; shorten or split it"
            )))
    if skipped:
        warnings.append(too_long_warning(skipped, max_tokens))
    ordered = sorted(lengths)
    summary = {
        "unit": "tokens" if measured else "estimated tokens",
        "tokenizer": measure.name if measured else None,
        "limit": max_tokens,
        "longest": ordered[-1],
        "median": int(statistics.median(ordered)),
        "over_limit": sum(1 for n in lengths if n > max_tokens),
    }
    return usable, summary


def too_long_warning(skipped: Sequence[Problem], limit: int, what: str = "examples") -> str:
    """The one warning naming the over-long lines training skips, and how many there are.

    For example "skipped 3 examples longer than 1,024 tokens: lines 4, 17, 230; ...".
    """
    sources = {p.source for p in skipped}
    if len(sources) == 1:
        where = f"line{'' if len(skipped) == 1 else 's'} {_listed([str(p.line) for p in skipped])}"
    else:
        where = _listed([f"{Path(p.source).name} line {p.line}" for p in skipped])
    noun, them = (what.removesuffix("s"), "it") if len(skipped) == 1 else (what, "them")
    return (
        f"skipped {len(skipped):,} {noun} longer than {limit:,} tokens: {where}; training goes on with the rest. "
        f"Shorten or split {them}, or raise --max-length, to train on {them} too"
        + (" (--check --json lists them all)" if len(skipped) > LISTED_LINES else "")
    )


def _near_repeats(
    usable: list[Example], loose: dict[int, Example], flagged: list[Problem], warnings: list[str]
) -> None:
    """Flag near duplicates, then inputs repeated up to case and punctuation with other outputs.

    An example can be both; it is reported once, as a near duplicate.
    """
    texts = ["\n".join(m["content"] for m in e.messages if m["role"] != "system") for e in usable]
    repeats = near_duplicates(texts, NEAR_DUPLICATE)
    for duplicate in repeats:
        example, earlier = usable[duplicate.index], usable[duplicate.earlier]
        same = "the same text once case, spacing and punctuation are folded" if duplicate.similarity == 1.0 else (
            f"{duplicate.similarity:.0%} of its word 3-grams shared"
        )
        flagged.append(_at(example, "near_duplicate", f"nearly repeats {_where(earlier, example)} ({same}); drop one or vary it"))
    if repeats:
        pairs = [f"{usable[d.index].line}~{usable[d.earlier].line}" for d in repeats]
        warnings.append(
            f"{_count(len(repeats), 'example')} nearly {'repeats an earlier one' if len(repeats) == 1 else 'repeat earlier ones'} "
            f"(lines {_listed(pairs)}): each near duplicate weighs one wording again, so the adapter over-learns it. "
            "Quality beats quantity: drop or vary them."
        )
    near = {id(usable[d.index]) for d in repeats}
    # The same input apart from case, spacing and punctuation, with another output: often
    # deliberate variation (datasets vary how a question is typed), so a warning, not an error.
    varied = [(e, loose[id(e)]) for e in usable if id(e) in loose and id(e) not in near]
    for example, earlier in varied:
        flagged.append(_at(example, "near_conflict", (
            f"same input as {_where(earlier, example)} apart from case, spacing or punctuation, with a different "
            "output; keep both only if both are answers in the house style"
        )))
    if varied:
        warnings.append(
            f"{_count(len(varied), 'input')} {'repeats' if len(varied) == 1 else 'repeat'} an earlier input apart from "
            f"case, spacing or punctuation, with a different output (lines {_listed([str(e.line) for e, _ in varied])}). "
            "Varied answers to one question teach an average of them; keep the variation only if every answer is in "
            "the house style."
        )


def _fact_leaks(usable: list[Example], flagged: list[Problem], warnings: list[str]) -> dict[str, Any] | None:
    if not usable:
        return None
    pairs = [
        ("\n".join(m["content"] for m in e.messages if m["role"] != "assistant"), "\n".join(_outputs(e)))
        for e in usable
    ]
    leaks = find_leaks(pairs)
    worst = sorted(leaks, key=lambda leak: (-len(leak.facts), leak.index))[:WORST_LEAKS]
    for leak in worst:
        example = usable[leak.index]
        flagged.append(_at(example, "fact_leak", (
            f"the output states {_facts(leak.facts)}, not in its input; facts belong in retrieval, not the adapter"
        )))
    named = [f"{Path(usable[leak.index].source).name} line {usable[leak.index].line}: {_facts(leak.facts, 4)}"
             for leak in worst[:WORST_IN_WARNING]]
    often = [(f, n) for f, n in Counter(f for leak in leaks for f in leak.facts).most_common(COMMON_FACTS) if n > 1]
    common = [f"{fact} ({_count(count, 'output')})" for fact, count in often]
    if warning := advice.fact_leak_warning(len(leaks), len(usable), named, common):
        warnings.append(warning)
    return {
        "share": round(len(leaks) / len(usable), 4),
        "examples": len(leaks),
        "common": [{"fact": fact, "examples": count} for fact, count in often],
        "worst": [
            {"source": usable[leak.index].source, "line": usable[leak.index].line, "facts": list(leak.facts)}
            for leak in worst
        ],
    }


def _facts(facts: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(facts[:most])
    return shown + (f" and {len(facts) - most} more" if len(facts) > most else "")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items[:LISTED_LINES]) + (", ..." if len(items) > LISTED_LINES else "")


def _at(example: Example, code: str, message: str) -> Problem:
    return Problem(example.line, code, message, example.source)


def _outputs(example: Example) -> list[str]:
    return [m["content"] for m in example.messages if m["role"] == "assistant"]


def _where(earlier: Example, later: Example) -> str:
    return f"line {earlier.line}" if earlier.source == later.source else f"{earlier.source} line {earlier.line}"
