"""The product's guidance on a dataset as a whole, in plain words (private; `tune.check` uses it).

The numbers are the fine-tuning guidance the product follows: under about 500 examples a LoRA
adapter is unlikely to specialise meaningfully; 500-2,000 good examples suit a house style or
format; 5,000-50,000 are needed for a large change of behaviour; quality beats quantity.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_EXAMPLES = 500
STYLE_EXAMPLES = 2_000
BEHAVIOUR_EXAMPLES = (5_000, 50_000)
# An output with fewer words than this is "very short"; warn when this share of outputs is.
SHORT_OUTPUT_WORDS = 5
SHORT_OUTPUT_SHARE = 0.2
# Below this share of leaking outputs the leaks are listed as a note rather than a finding
# about the whole dataset.
FACT_LEAK_SHARE = 0.2
QUALITY = "Quality beats quantity: fix or drop weak examples before adding more."


def size_guidance(n: int) -> str:
    """Where ``n`` usable examples stand on the guidance scale (always given)."""
    if n < MIN_EXAMPLES:
        return (
            f"only {n:,} example{'' if n == 1 else 's'}: below about {MIN_EXAMPLES}, a LoRA adapter is unlikely to specialise meaningfully. "
            f"500-2,000 good examples suit a house style or format; 5,000-50,000 are needed for a large change of "
            f"behaviour. {QUALITY}"
        )
    if n <= STYLE_EXAMPLES:
        return (
            f"{n:,} examples: in the 500-2,000 range that suits a house style or format; a large change of behaviour "
            f"would need 5,000-50,000. {QUALITY}"
        )
    low, high = BEHAVIOUR_EXAMPLES
    if n < low:
        return (
            f"{n:,} examples: more than a house style or format needs (500-2,000 good ones), fewer than a large change "
            f"of behaviour needs (5,000-50,000). {QUALITY}"
        )
    if n <= high:
        return (
            f"{n:,} examples: in the 5,000-50,000 range for a large change of behaviour; a house style or format "
            f"alone needs only 500-2,000 good ones. {QUALITY}"
        )
    return (
        f"{n:,} examples: beyond 50,000, more examples rarely help a LoRA adapter and training takes longer. "
        f"{QUALITY} Keep the best and drop the rest."
    )


def size_warning(n: int) -> str | None:
    """The size guidance when the count is outside the useful range (None inside it)."""
    return size_guidance(n) if n < MIN_EXAMPLES or n > BEHAVIOUR_EXAMPLES[1] else None


def short_output_warning(outputs: Sequence[str]) -> str | None:
    """A warning when many outputs are a few words long (the adapter would learn terseness)."""
    n = len(outputs)
    short = sum(1 for out in outputs if len(out.split()) < SHORT_OUTPUT_WORDS)
    if not n or short / n < SHORT_OUTPUT_SHARE:
        return None
    return (
        f"{short:,} of {n:,} outputs ({short / n:.0%}) are very short (under {SHORT_OUTPUT_WORDS} words); the adapter "
        "will learn to answer tersely. If the house style is fuller, give complete answers."
    )


def fact_leak_warning(leaking: int, n: int, worst: Sequence[str], common: Sequence[str]) -> str | None:
    """A warning naming the share of outputs with facts absent from their input, and where to look.

    Args:
        leaking: examples whose output states such facts.
        n: usable examples.
        worst: "FILE line N: facts" for the worst few lines, most facts first.
        common: "FACT (N outputs)" for the facts leaked most often (in two outputs or more).
    """
    if not leaking:
        return None
    share = leaking / n
    often = f"most often: {', '.join(common)}; " if common else ""
    head = (
        f"{leaking:,} of {n:,} outputs ({share:.0%}) {'states' if leaking == 1 else 'state'} numbers, dates or names "
        f"that are not in their input ({often}worst lines: {'; '.join(worst)})."
    )
    if share < FACT_LEAK_SHARE:
        return f"{head} Check those lines: facts belong in retrieval, not in the adapter."
    return (
        f"{head} Facts belong in retrieval, not the adapter: trained on them, it learns to invent figures, dates "
        "and names. Keep outputs to what the input says and let the document index supply the facts."
    )
