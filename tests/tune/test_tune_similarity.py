"""Near duplicates: found across reorderings of the file, confirmed exactly, never below the threshold."""

from __future__ import annotations

import random

from tune.similarity import near_duplicates

WORDS = ("account order refund parcel invoice address delivery payment card password login email phone "
         "store branch team manager review ticket status week month update change cancel open close send "
         "receive check confirm thanks please sorry help question answer support service price plan").split()


def paragraph(rng: random.Random, n: int = 100) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def test_one_changed_word_in_a_paragraph_is_a_near_duplicate() -> None:
    rng = random.Random(0)
    texts = [paragraph(rng) for _ in range(50)]
    words = texts[7].split()
    words[50] = "zebra"  # 3 of 98 word 3-grams change: similarity 95/101
    texts.append(" ".join(words))
    found = near_duplicates(texts)
    assert [(d.index, d.earlier) for d in found] == [(50, 7)]
    assert 0.9 <= found[0].similarity < 1.0


def test_case_spacing_and_punctuation_are_folded() -> None:
    texts = ["How do I reset my password? Open Settings.", "how do i  reset my password -- open settings!!"]
    found = near_duplicates(texts)
    assert [(d.index, d.earlier, d.similarity) for d in found] == [(1, 0, 1.0)]


def test_below_the_threshold_is_not_reported() -> None:
    rng = random.Random(1)
    base = paragraph(rng, 40)
    words = base.split()
    words[20] = "zebra"  # 3 of 38 word 3-grams change: similarity 35/41, about 0.85
    assert near_duplicates([base, " ".join(words)]) == []
    assert near_duplicates([base, " ".join(words)], threshold=0.8)[0].similarity == round(35 / 41, 3)


def test_short_texts_and_empty_ones() -> None:
    assert [(d.index, d.earlier) for d in near_duplicates(["Yes.", "yes", "No.", "", ""])] == [(1, 0)]


def test_many_distinct_texts_give_no_false_pairs_and_every_planted_pair_is_found() -> None:
    rng = random.Random(2)
    texts = [paragraph(rng) for _ in range(3000)]
    planted = {}
    for copy_of in rng.sample(range(3000), 40):
        words = texts[copy_of].split()
        words[rng.randrange(len(words))] = "zebra"  # similarity 0.94 or more
        planted[len(texts)] = copy_of
        texts.append(" ".join(words))
    found = {d.index: d.earlier for d in near_duplicates(texts)}
    assert found == planted
