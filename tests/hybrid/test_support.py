"""The strict support check rejects what word overlap accepts: shuffles, splices, wrong numbers,
another document's sentence; it accepts the evidence's own claims and close rewordings."""

from __future__ import annotations

import pytest

from hybrid.support import SupportCheck, stem

EVIDENCE = [
    "BERT is pre-trained on two unsupervised tasks: masked language modelling and next sentence prediction. "
    "The masked language model randomly masks 15% of the input tokens.",
    "The flight lasted 95 minutes. The pulley was repaired after the first flight.",
    "The Company repurchased 262 million shares of its common stock. No dividends were declared.",
    "The adapter changes how the base model writes.",
]
check = SupportCheck(None)  # the lexical tests only; the meaning test needs an embedder


@pytest.mark.parametrize(
    "sentence",
    [
        "BERT is pre-trained on two unsupervised tasks: masked language modelling and next sentence prediction.",
        "The masked language model masks 15% of the input tokens.",
        "The flight lasted 95 minutes.",
        "No dividends were declared.",
        "The adapter changes how the model writes.",  # a word left out
        "The adapter really changes how the base model writes.",  # a word added
    ],
)
def test_the_evidence_and_close_rewordings_pass(sentence) -> None:
    result = check.supports(sentence, EVIDENCE)
    assert result.supported, result


@pytest.mark.parametrize(
    ("sentence", "fails"),
    [
        ("1. Pre-training tasks include masked language. 2. Pre-feeling tasks of prediction.", "coverage"),
        ("Tasks language two sentence BERT prediction masked unsupervised pre-trained next modelling.", "order"),
        ("The flight lasted approximately 2 hours.", "numbers"),
        ("The masked language model masks 25% of the input tokens.", "numbers"),
        ("GPT-2 is trained on web text with a left-to-right language modelling objective.", "coverage"),
        ("The Company did not repurchase 262 million shares of its common stock.", "polarity"),
        ("The Company didn't repurchase 262 million shares.", "polarity"),
        ("Dividends were declared.", "polarity"),
        ("It changes how the base model reads.", "swap"),  # seen in the docs' demo answers
        ("The adapter alters how the base model writes.", "swap"),
        ("The Company repurchased 262 million shares of its preferred stock.", "swap"),
    ],
)
def test_nonsense_shuffles_wrong_numbers_and_other_facts_fail(sentence, fails) -> None:
    result = check.supports(sentence, EVIDENCE)
    assert not result.supported
    assert {"coverage": result.coverage < check.min_coverage, "order": result.order < check.min_order,
            "numbers": not result.numbers, "polarity": not result.polarity, "swap": not result.unswapped}[fails], result


def test_the_meaning_test_uses_the_embedder(fake_embedder) -> None:
    strict = SupportCheck(fake_embedder.embed, min_similarity=0.99)
    assert not strict.supports("The flight lasted 95 minutes after all.", EVIDENCE).supported
    assert strict.supports("The flight lasted 95 minutes.", EVIDENCE).similarity == pytest.approx(1.0, abs=1e-5)


def test_light_stems() -> None:
    assert stem("reports") == stem("reported") == stem("report") == "report"
    assert stem("Apple's") == "Apple" and stem("81,797") == "81797" and stem("is") == "is"
