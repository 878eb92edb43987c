"""The scorecard for people: a markdown table of the systems side by side, and a PNG.

The table has one row per measure and one column per system; with two systems a last column
gives the ratio of the first to the second, which is how a change is judged (timings on a
shared machine are noisy; ratios measured in one run are not).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# (section, key, label, kind): kind "share" prints 0.123, "ms" seconds, "n" a plain number.
ROWS = (
    ("retrieval", "doc_hit_at_k", "document hit@k", "share"),
    ("retrieval", "page_hit_at_k", "page hit@k", "share"),
    ("retrieval", "mrr", "document MRR", "share"),
    ("answers", "token_f1", "answer token F1", "share"),
    ("answers", "gold_recall", "gold-word recall", "share"),
    ("answers", "beyond_question_recall", "recall of gold words beyond the question", "share"),
    ("answers", "numbers_matched", "gold numbers stated", "share"),
    ("answers", "supported_sentences", "answer sentences supported (strict check)", "share"),
    ("answers", "valid_citations", "valid citations", "share"),
    ("answers", "answer_words", "answer length, words", "n"),
    ("refusals", "off_corpus_refused", "off-corpus questions refused", "share"),
    ("refusals", "covered_refused", "covered questions refused", "share"),
    ("latency_ms", "p50", "latency p50, s", "ms"),
    ("latency_ms", "p95", "latency p95, s", "ms"),
    ("latency_ms", "prefill_p50", "prefill p50, s", "ms"),
    ("tokens", "prompt", "prompt tokens", "n"),
    ("tokens", "completion", "completion tokens", "n"),
)


def markdown(cards: Sequence[dict[str, Any]]) -> str:
    """The scorecards (``Scorecard.to_dict``) as a markdown table."""
    names = [c["system"] for c in cards]
    head = ["measure", *names] + (["ratio"] if len(cards) == 2 else [])
    lines = [
        f"{cards[0]['n']} questions, k={cards[0]['k']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for section, key, label, kind in ROWS:
        values = [c.get(section, {}).get(key) for c in cards]
        if all(v is None for v in values):
            continue
        cells = [label, *(_cell(v, kind) for v in values)]
        if len(cards) == 2:
            a, b = values
            cells.append(f"{a / b:.2f}x" if a is not None and b else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "ms":
        return f"{value / 1000:.1f}"
    if kind == "n":
        return f"{value:.0f}"
    return f"{value:.3f}"


def plot(cards: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per-question token F1 of each system (bars), and latency against token F1 (dots), as a PNG.

    Returns ``path``, or None when matplotlib is missing (a warning is logged).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed, so no scorecard plot was drawn")
        return None
    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    bars, dots = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(cards)
    for i, card in enumerate(cards):
        rows = [q for q in card.get("questions", []) if not q["off_corpus"]]
        bars.bar([n + i * width for n in range(len(rows))], [q["token_f1"] for q in rows], width, label=card["system"])
        dots.scatter([q["seconds"] for q in rows], [q["token_f1"] for q in rows], s=12, label=card["system"])
    bars.set_xlabel("question")
    bars.set_ylabel("answer token F1")
    bars.set_title("Token F1 per question")
    bars.legend(fontsize=8)
    dots.set_xlabel("seconds per answer")
    dots.set_ylabel("answer token F1")
    dots.set_title("Quality against latency")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
