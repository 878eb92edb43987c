"""Evaluate an adapter on held-out examples: per-token loss and a style score, against the base model."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tune.batching import encode_all
from tune.config import TuneConfig
from tune.data import Example
from tune.errors import DataError
from tune.generate import Generator
from tune.models import load_model
from tune.style import MEANING, StyleScore, find_markers, mean_components, style_score
from tune.train import evaluate

Progress = Callable[[dict], None]
WORST_SHOWN = 3  # lowest-scoring replies kept in the report, to look at


@dataclass(frozen=True)
class Sample:
    """One generated reply, its reference and its score.

    Attributes:
        source, line: where the example is (1-based line).
        reference: the house-style reply (cut to the token limit when the generation was cut
            and the reference is longer; see `evaluate_adapter`).
        generated: the evaluated model's reply.
        score: its style score against the reference.
        base_generated, base_score: the base model's reply and score (None when not compared).
        cut: the reply reached ``max_new_tokens`` without ending.
    """

    source: str
    line: int
    reference: str
    generated: str
    score: StyleScore
    base_generated: str | None = None
    base_score: StyleScore | None = None
    cut: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the scores become dicts too


@dataclass
class StyleReport:
    """What `evaluate_adapter` measured.

    Attributes:
        adapter: the evaluated adapter (directory or reference); None for the base model alone.
        base_model: the base model directory.
        examples: examples whose loss was measured (those with reply tokens within max_length).
        scored: examples whose replies were generated and scored.
        eval_loss: per-token loss of the evaluated model on the replies (lower is better).
        base_eval_loss: the same for the base model; None when not compared.
        style_score: mean style score of the evaluated model's replies, 0..1 (higher: closer
            to the house style; see `tune.style`); None when no reply was generated
            (``max_examples=0``).
        base_style_score: the same for the base model's replies; None when not compared.
        components: mean of ``score`` and of each component for the evaluated model.
        base_components: the same for the base model, or None.
        markers: the house markers found in the references.
        worst: the lowest-scoring samples, worst first.
        max_new_tokens: the generation limit used.
        seconds: wall time of the evaluation.
        warnings: plain-words notes (skipped or cut examples).
        measures: one sentence on what the style score measures.
    """

    adapter: str | None
    base_model: str
    examples: int
    scored: int
    eval_loss: float
    base_eval_loss: float | None
    style_score: float | None
    base_style_score: float | None
    components: dict[str, float | None]
    base_components: dict[str, float | None] | None
    markers: list[str]
    worst: list[Sample]
    max_new_tokens: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    measures: str = MEANING

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # nested samples and scores become dicts too


def evaluate_adapter(
    adapter_dir: Path | None,
    base_model_dir: Path,
    examples: Sequence[Example],
    *,
    max_length: int = 1024,
    max_examples: int = 16,
    max_new_tokens: int = 192,
    seed: int = 0,
    progress: Progress | None = None,
    base: bool = True,
) -> StyleReport:
    """Held-out loss and style score of an adapter (and, with ``base``, of the base model).

    The base model is loaded once; the adapter is applied unmerged, so the base model's figures
    come from the same weights with the adapter switched off. The loss covers every example;
    replies are generated (greedy, stopping at the end-of-turn token, as ``hybrid ask``
    generates) for up to ``max_examples`` of them, a sample drawn with ``seed`` so that two
    adapters evaluated on the same examples answer the same prompts. Each reply answers the
    conversation without its last assistant turn, and is scored against that turn. When a reply
    reaches ``max_new_tokens`` and the reference is longer, the reference is cut to as many
    tokens, so that a long house reply is compared with what the model had room to write.

    Args:
        adapter_dir: a PEFT adapter directory; None evaluates the base model alone (then
            every ``base_*`` figure is None).
        base_model_dir: the local base model directory the adapter was trained on.
        examples: held-out conversations, each ending with the reference reply.
        max_length: tokens of a conversation kept for the loss (longer ones are cut).
        max_examples: replies generated per model (the slow part: about max_new_tokens / 20
            seconds each for a 135M model on 2 CPU cores); 0 measures the loss only.
        max_new_tokens: the longest generated reply, in tokens.
        seed: picks the sample of examples to generate for.
        progress: called with ``{"message": str}`` before slow phases and with
            ``{"phase": "adapter"|"base", "done": n, "total": n}`` after each reply.
        base: also measure the base model (the gate compares adapters only, and passes False).

    Raises:
        DataError: no example has a reply within ``max_length`` tokens, or none ends with an
            assistant reply.
        ModelNotFoundError, TuneError: see `load_model`.
    """
    started = time.perf_counter()
    report = progress or (lambda info: None)
    if max_examples < 0 or max_new_tokens < 1:
        raise DataError(f"max_examples must be >= 0 and max_new_tokens >= 1, got {max_examples} and {max_new_tokens}")
    pairs = [(e, i) for e in examples if (i := _last_reply(e)) is not None]
    if not pairs:
        raise DataError("no evaluation example ends with an assistant reply to compare with")
    report({"message": f"loading base model {base_model_dir}" + (f" and adapter {adapter_dir}" if adapter_dir else "")})
    model, tokenizer = load_model(base_model_dir, adapter_dir=adapter_dir, merge=False)
    compare = base and adapter_dir is not None
    items, warnings = encode_all(tokenizer, examples, max_length, "evaluation")
    if not items:
        raise DataError(f"no evaluation example has a reply within max_length={max_length} tokens; raise max_length")
    micro = TuneConfig().micro_batch_tokens
    report({"message": f"measuring the held-out loss on {len(items)} examples"})
    eval_loss = evaluate(model, items, micro, tokenizer.pad_token_id)
    base_eval_loss = None
    if compare:
        with model.disable_adapter():
            base_eval_loss = evaluate(model, items, micro, tokenizer.pad_token_id)

    if max_examples == 0:  # the held-out loss alone (the gate's "loss" mode)
        return StyleReport(
            adapter=str(adapter_dir) if adapter_dir is not None else None, base_model=str(base_model_dir),
            examples=len(items), scored=0, eval_loss=eval_loss, base_eval_loss=base_eval_loss, style_score=None,
            base_style_score=None, components={}, base_components=None, markers=[], worst=[],
            max_new_tokens=max_new_tokens, seconds=time.perf_counter() - started, warnings=warnings,
        )
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), min(max_examples, len(pairs))))
    sample = [pairs[i] for i in chosen]
    generator = Generator(model, tokenizer, Path(base_model_dir), adapter_dir)
    phase = "adapter" if adapter_dir is not None else "base"
    replies = _generate_all(generator, sample, max_new_tokens, phase, report)
    base_replies = None
    if compare:
        with model.disable_adapter():
            base_replies = _generate_all(generator, sample, max_new_tokens, "base", report)

    markers = find_markers([e.messages[i]["content"] for e, i in pairs])
    samples = []
    for n, (example, index) in enumerate(sample):
        prompt = "\n".join(m["content"] for m in example.messages[:index])
        text, cut = replies[n]
        reference = _reference(tokenizer, example.messages[index]["content"], cut, max_new_tokens)
        base_text, base_score = None, None
        if base_replies is not None:
            base_text, base_cut = base_replies[n]
            base_ref = _reference(tokenizer, example.messages[index]["content"], base_cut, max_new_tokens)
            base_score = style_score(base_text, base_ref, markers=markers, prompt=prompt)
        score = style_score(text, reference, markers=markers, prompt=prompt)
        samples.append(Sample(example.source, example.line, reference, text, score, base_text, base_score, cut))
    if cuts := sum(s.cut for s in samples):
        warnings.append(
            f"{cuts} of {len(samples)} replies reached max_new_tokens={max_new_tokens} without ending; their references "
            "were cut to match, so length and closings are judged on the part written; raise max_new_tokens to see them whole"
        )
    components = mean_components([s.score for s in samples])
    base_components = mean_components([s.base_score for s in samples if s.base_score]) if compare else None
    return StyleReport(
        adapter=str(adapter_dir) if adapter_dir is not None else None,
        base_model=str(base_model_dir),
        examples=len(items),
        scored=len(samples),
        eval_loss=eval_loss,
        base_eval_loss=base_eval_loss,
        style_score=components["score"] or 0.0,
        base_style_score=base_components["score"] if base_components else None,
        components=components,
        base_components=base_components,
        markers=markers,
        worst=sorted(samples, key=lambda s: s.score.score)[:WORST_SHOWN],
        max_new_tokens=max_new_tokens,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


def _last_reply(example: Example) -> int | None:
    """Index of the last assistant message, if it has text."""
    for index in range(len(example.messages) - 1, -1, -1):
        message = example.messages[index]
        if message["role"] == "assistant":
            return index if message["content"].strip() else None
    return None


def _generate_all(
    generator: Generator, sample: Sequence[tuple[Example, int]], max_new_tokens: int, phase: str, report: Progress
) -> list[tuple[str, bool]]:
    """(reply, whether it was cut at max_new_tokens) per example."""
    replies = []
    report({"message": f"generating {len(sample)} replies with the {'adapter' if phase == 'adapter' else 'base model'}"})
    for done, (example, index) in enumerate(sample, start=1):
        result = generator.generate(example.messages[:index], max_new_tokens=max_new_tokens)
        replies.append((result.text, result.completion_tokens >= max_new_tokens))
        report({"phase": phase, "done": done, "total": len(sample), "seconds": result.seconds})
    return replies


def _reference(tokenizer: Any, text: str, cut: bool, max_new_tokens: int) -> str:
    """The reference, cut to ``max_new_tokens`` tokens when the reply it is compared with was cut."""
    if not cut:
        return text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_new_tokens:
        return text
    return tokenizer.decode(ids[:max_new_tokens], skip_special_tokens=True).strip()

