"""Fact leaks: numbers, dates and names in an output that its input does not hold."""

from __future__ import annotations

from tune.leaks import find_leaks


def facts(pairs: list[tuple[str, str]]) -> dict[int, tuple[str, ...]]:
    return {leak.index: leak.facts for leak in find_leaks(pairs)}


def test_numbers_dates_and_names_absent_from_the_input_leak() -> None:
    found = facts([
        ("When was my account opened?", "It was opened on 14 March 2023 by Dr Okafor at the Leeds branch."),
        ("Opened on 14 March 2023 by Dr Okafor at Leeds: when was my account opened?",
         "It was opened on 14 March 2023 by Dr Okafor at the Leeds branch."),
    ])
    assert found == {0: ("14", "2023", "Dr", "Leeds", "March", "Okafor")}


def test_sentence_starts_common_words_list_markers_and_slots_do_not_leak() -> None:
    found = facts([
        ("How do I cancel?", "Sure. Please open Settings, then:\n1. Choose Orders.\n2. Press cancel on {{Order Number}}."),
        ("Where are the settings and orders?", "The settings are under orders."),
    ])
    assert found == {}


def test_acronyms_leak_but_a_shouted_reply_does_not() -> None:
    found = facts([
        ("Is the trial safe?", "The trial was run by the NHS and found no harm."),
        ("is it safe", "YES, IT IS SAFE AND WELL TESTED."),
    ])
    assert found == {0: ("NHS",)}


def test_a_name_in_many_outputs_is_house_vocabulary() -> None:
    pairs = [(f"Question {i} about my plan", f"Thanks for asking about plan {i}. Kind regards, the Acme team.")
             for i in range(20)]
    pairs.append(("Who can help me?", "Ask Priya in the billing team."))
    assert facts(pairs) == {20: ("Priya",)}


def test_numbers_in_the_input_do_not_leak_whatever_their_separators() -> None:
    found = facts([("Trial: 1,250 patients, risk ratio 0.85", "The trial had 1250 patients and a risk ratio of 0.85.")])
    assert found == {}
