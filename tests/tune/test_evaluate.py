"""The style score (chrF, house markers, length, layout) and evaluate_adapter on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tune import DataError, StyleReport, evaluate_adapter, read_examples
from tune.style import chrf, find_markers, mean_components, style_score

from tests.tune.conftest import HOUSE_REPLY

CLOSING = "Kind regards,\nThe Support Team"
REPLIES = [
    f"Hello,\n\nYour order {n} ships {when}.\n\n{CLOSING}"
    for n, when in [(1, "today"), (2, "on Monday"), (3, "next week"), (4, "in two days"), (5, "tomorrow")]
]


def test_chrf_is_one_for_identical_text_zero_for_disjoint_and_ignores_spaces() -> None:
    assert chrf("the cat sat", "the cat sat") == 1.0
    assert chrf("abc", "xyz") == 0.0
    assert chrf("the  cat\nsat", "the cat sat") == 1.0
    assert chrf("", "") == 1.0 and chrf("", "text") == 0.0
    near, far = chrf("the cat sat on a mat", "the cat sat on the mat"), chrf("a dog ran", "the cat sat on the mat")
    assert 0 < far < near < 1


def test_chrf_weighs_recall_over_precision() -> None:
    reference = "please check your account today"
    # Half the reference (low recall) scores below the reference plus as much again (low precision).
    assert chrf("please check", reference) < chrf(reference + " and again tomorrow morning", reference)


def test_identical_reply_scores_one_on_every_component() -> None:
    markers = find_markers(REPLIES)
    score = style_score(REPLIES[0], REPLIES[0], markers=markers, prompt="When does order 1 ship?")
    assert score.to_dict() == {"score": 1.0, "chrf": 1.0, "markers": 1.0, "length": 1.0, "layout": 1.0}


def test_markers_are_the_recurring_opening_and_closing() -> None:
    markers = find_markers(REPLIES)
    assert "kind regards ," in markers and "the support team" in markers
    assert not any("monday" in m for m in markers)  # said once: not a house marker
    assert find_markers(REPLIES[:2]) == []  # too few references to tell what recurs


def test_a_reply_without_the_house_closing_scores_lower() -> None:
    markers = find_markers(REPLIES)
    reference = REPLIES[1]
    with_closing = style_score(REPLIES[1].replace("on Monday", "on Tuesday"), reference, markers=markers)
    without = style_score("Hello,\n\nYour order 2 ships on Tuesday.", reference, markers=markers)
    assert with_closing.markers == 1.0 and without.markers is not None and without.markers < 1.0
    assert without.score < with_closing.score and without.layout < 1.0 and without.length < 1.0


def test_the_markers_component_is_left_out_when_the_reference_has_none() -> None:
    score = style_score("One line here.", "Another line there.", markers=["kind regards ,"])
    assert score.markers is None
    assert score.score == pytest.approx((score.chrf + score.length + score.layout) / 3)


def test_length_and_layout_components() -> None:
    reference = "Steps:\n- open the app\n- tap refund\n\nDone."
    assert style_score("Steps:\n- open it\n- tap it\n\nDone.", reference).layout == 1.0
    flat = style_score("Open the app and tap refund. Done.", reference)
    assert flat.layout < 0.5  # one line, one paragraph, no list items against 4, 2 and 2
    assert style_score("one two", "one two three four").length == 0.5
    assert style_score("word " * 8, "word " * 8).length == 1.0


def test_facts_from_the_prompt_are_blanked_for_chrf() -> None:
    reference = "Your refund for the blender arrives on Friday."
    other_facts = "Your refund for the toaster arrives on Monday."
    prompt = "Where is my refund for the blender, or the toaster? Friday or Monday?"
    assert style_score(other_facts, reference, prompt=prompt).chrf == 1.0  # same wording, other facts
    assert style_score(other_facts, reference).chrf < 1.0


def test_mean_components_skips_missing_markers() -> None:
    scores = [style_score("a b", "a b", markers=[]), style_score(REPLIES[0], REPLIES[0], markers=find_markers(REPLIES))]
    means = mean_components(scores)
    assert means["markers"] == 1.0 and means["score"] == 1.0 and means["length"] == 1.0


def test_evaluate_adapter_compares_adapter_and_base(trained, tiny_model_dir: Path, tmp_path: Path, write_jsonl) -> None:
    _, adapter_dir, _ = trained
    rows = [
        {"messages": [{"role": "user", "content": f"Question {i}: where is my parcel?"},
                      {"role": "assistant", "content": HOUSE_REPLY}]}
        for i in range(5)
    ]
    examples, _ = read_examples(write_jsonl(tmp_path / "held.jsonl", rows))
    events: list[dict] = []
    report = evaluate_adapter(
        adapter_dir, tiny_model_dir, examples, max_examples=2, max_new_tokens=24, progress=events.append
    )
    assert isinstance(report, StyleReport) and (report.examples, report.scored) == (5, 2)
    assert report.eval_loss < report.base_eval_loss  # the adapter learnt this reply
    assert report.style_score > report.base_style_score
    assert report.markers and all(0 <= v <= 1 for v in report.components.values() if v is not None)
    assert [e["done"] for e in events if e.get("phase") == "base"] == [1, 2]
    document = json.loads(json.dumps(report.to_dict()))
    assert document["worst"][0]["line"] in range(1, 6) and "form" in document["measures"]
    again = evaluate_adapter(adapter_dir, tiny_model_dir, examples, max_examples=2, max_new_tokens=24, base=False)
    assert again.base_eval_loss is None and again.base_style_score is None
    assert again.eval_loss == pytest.approx(report.eval_loss) and again.style_score == report.style_score
    assert [s.line for s in again.worst] == [s.line for s in report.worst]  # same seed, same sample


def test_evaluate_the_base_model_alone_and_refuse_examples_without_replies(tiny_model_dir: Path, tmp_path: Path,
                                                                          write_jsonl) -> None:
    rows = [{"prompt": f"Say hi {i}", "completion": "Hi there."} for i in range(3)]
    examples, _ = read_examples(write_jsonl(tmp_path / "held.jsonl", rows))
    report = evaluate_adapter(None, tiny_model_dir, examples, max_examples=1, max_new_tokens=4)
    assert report.adapter is None and report.base_eval_loss is None and math.isfinite(report.eval_loss)
    assert report.scored == 1 and report.worst[0].cut  # 4 tokens of noise: cut, and said so
    assert any("max_new_tokens=4" in w for w in report.warnings)
    with pytest.raises(DataError, match="max_length"):
        evaluate_adapter(None, tiny_model_dir, examples, max_length=4)


@pytest.mark.slow
def test_cli_eval_on_the_real_model(smollm2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    write_jsonl) -> None:
    from click.testing import CliRunner

    from hybrid.cli import main

    monkeypatch.setenv("HYBRID_HOME", str(tmp_path / "home"))
    rows = [
        {"messages": [{"role": "user", "content": f"Write a status note for ticket {i}."},
                      {"role": "assistant", "content": f"Status: ticket {i} is in progress.\n-- The Support Team"}]}
        for i in range(3)
    ]
    path = write_jsonl(tmp_path / "held.jsonl", rows)
    args = ["tune", "eval", "none", str(path), "--base-model", str(smollm2_dir), "--max-examples", "2",
            "--max-new-tokens", "16", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"eval_loss", "style_score", "components", "markers", "worst", "measures"} <= set(report)
    assert math.isfinite(report["eval_loss"]) and 0 < report["eval_loss"] < 20
    assert report["scored"] == 2 and 0 <= report["style_score"] <= 1 and report["base_eval_loss"] is None
    assert "- - the support team" in report["markers"]
