"""Context-aware (RAFT-style) examples: serve-time prompt, distractors, citations, refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.context import cite_reply, pair_with_context
from hybrid.errors import BadRequestError
from hybrid.guidance import REFUSAL
from hybrid.prompt import SYSTEM_PROMPT, build_messages
from hybrid.tuning import ContextAugment
from ingest import Hit
from tune import Example

ENGINE = "The engine lost power because of fuel starvation after the crew left the fuel selector on the empty tank."
REVENUE = "Revenue grew 12 percent to 81 billion dollars, driven by services and wearables."
UNSUPPORTED = "Thank you for writing to us; a colleague will telephone you tomorrow morning."
_SOURCE = re.compile(r"^\[(\d+)\] \((.+), page (\d+)\)$", re.MULTILINE)


def example(question: str, reply: str, line: int = 1) -> Example:
    return Example(({"role": "system", "content": "Be brief."}, {"role": "user", "content": question},
                    {"role": "assistant", "content": reply}), "house.jsonl", line)


def shown_sources(paired: Example) -> dict[int, tuple[str, int]]:
    """``n -> (file name, page)`` of the sources in the prompt."""
    return {int(n): (name, int(page)) for n, name, page in _SOURCE.findall(paired.messages[1]["content"])}


def search_of(pipe):
    return lambda question, k: pipe.search(question, k=k)


def test_a_supported_reply_gets_the_serve_prompt_sources_and_a_citation(pipeline) -> None:
    question = "Why did the engine lose power?"
    [paired], report = pair_with_context(
        [example(question, f"Dear customer, thank you. {ENGINE} Kind regards.")],
        search_of(pipeline), pipeline.index(), passages=3, distractors=1,
    )
    system, user, reply = paired.messages
    sources = shown_sources(paired)
    assert system == {"role": "system", "content": SYSTEM_PROMPT} and len(sources) == 3
    assert user["content"].endswith(f"Question: {question}\nAnswer from the sources above and cite them like [1].")
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", reply["content"])]
    assert len(cited) == 1 and sources[cited[0]] == ("engine report.pdf", 2)
    # The marker sits before the full stop of the supported sentence; the rest is untouched.
    assert reply["content"] == f"Dear customer, thank you. {ENGINE[:-1]} [{cited[0]}]. Kind regards."
    assert (paired.source, paired.line) == ("house.jsonl", 1)
    assert report.to_dict() == {"examples": 1, "cited": 1, "refusals": 0, "unsupported": 0, "citations": 1}


def test_the_prompt_is_exactly_the_serve_time_prompt(pipeline) -> None:
    question = "How much did revenue grow?"
    [paired], _ = pair_with_context([example(question, REVENUE)], search_of(pipeline), pipeline.index(),
                                    passages=3, distractors=1)
    hits = {(Path(h.source).name, h.page): h for h in pipeline.index().search("revenue fuel adverse landed", k=10)}
    ordered = [hits[place] for _, place in sorted(shown_sources(paired).items())]
    assert list(paired.messages[:2]) == build_messages(question, ordered)


def test_distractors_come_from_other_documents_and_the_seed_repeats_them(pipeline) -> None:
    examples = [example("Why did the engine lose power?", ENGINE, line) for line in range(1, 7)]
    index = pipeline.index()
    first, _ = pair_with_context(examples, search_of(pipeline), index, passages=3, distractors=2, seed=1)
    again, _ = pair_with_context(examples, search_of(pipeline), index, passages=3, distractors=2, seed=1)
    other, _ = pair_with_context(examples, search_of(pipeline), index, passages=3, distractors=2, seed=2)
    assert [e.messages for e in first] == [e.messages for e in again]
    assert [e.messages for e in first] != [e.messages for e in other]
    for paired in first:
        names = [name for name, _ in shown_sources(paired).values()]
        assert len(names) == 3 and names.count("engine report.pdf") == 1  # 1 retrieved, 2 from elsewhere
    # Shuffled: the retrieved passage is not always first.
    assert len({next(n for n, (name, _) in shown_sources(p).items() if name == "engine report.pdf") for p in first}) > 1


def test_an_unsupported_reply_stays_as_it_was(pipeline) -> None:
    original = example("Can someone call me back?", UNSUPPORTED)
    [kept], report = pair_with_context([original], search_of(pipeline), pipeline.index(), passages=3, distractors=1)
    assert kept == original
    assert (report.cited, report.unsupported, report.citations) == (0, 1, 0)
    assert "1 of 1 training examples have no passage" in report.warning("training")


def test_a_share_of_supported_examples_learns_to_refuse_without_the_supporting_passage(pipeline) -> None:
    examples = [example("Why did the engine lose power?", ENGINE, line) for line in range(1, 5)]
    examples.append(example("Can someone call me back?", UNSUPPORTED, 5))
    paired, report = pair_with_context(examples, search_of(pipeline), pipeline.index(), passages=3,
                                       distractors=1, refusal_share=0.5, seed=3)
    refusing = [p for p in paired if p.messages[-1]["content"] == REFUSAL]
    assert (report.cited, report.refusals, report.unsupported) == (2, 2, 1) and len(refusing) == 2
    for p in refusing:
        assert ("engine report.pdf", 2) not in shown_sources(p).values() and len(shown_sources(p)) == 3
    assert paired[4] == examples[4]


def test_cite_reply_marks_supported_claims_only_and_keeps_the_layout() -> None:
    hits = [Hit("a.pdf", 1, "a:p1:c0", 0.0, "Unrelated text about weather in spring."),
            Hit("b.pdf", 2, "b:p2:c0", 0.0, ENGINE)]
    reply = f"Hello!\n- {ENGINE}\n- The moon is made of cheese and crackers.\nYes."
    text, markers = cite_reply(reply, hits)
    assert text == f"Hello!\n- {ENGINE[:-1]} [2].\n- The moon is made of cheese and crackers.\nYes."
    assert markers == [1]
    assert cite_reply("Yes. Fuel starvation", hits) == ("Yes. Fuel starvation", [])  # too short to be a claim


def test_bad_settings_are_refused_with_the_reason(pipeline) -> None:
    with pytest.raises(BadRequestError, match="distractors must be from 0 to passages - 1"):
        pair_with_context([], search_of(pipeline), pipeline.index(), passages=2, distractors=2)
    with pytest.raises(BadRequestError, match="refusal_share"):
        ContextAugment(search_of(pipeline), pipeline.index(), index_dir="x", passages=3, distractors=1, refusal_share=1.5)


def _write_examples(path: Path) -> Path:
    rows = [{"prompt": f"Why did the engine lose power (case {i})?", "completion": f"Case {i}: {ENGINE} Best, desk {i}."}
            for i in range(6)]
    rows += [{"prompt": f"How much did revenue grow (note {i})?", "completion": f"Note {i}: {REVENUE} Best, desk {i}."}
             for i in range(4)]
    rows += [{"prompt": f"Can someone call me back ({i})?", "completion": f"{UNSUPPORTED} Ticket {i}."} for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_with_context_trains_on_sources_and_records_it(home: Path, corpus_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(corpus_dir), "--json"]).exit_code == 0
    data = _write_examples(tmp_path / "house.jsonl")
    result = runner.invoke(main, ["tune", str(data), "--with-context", str(home / "index"), "--max-steps", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    context = payload["context"]
    assert context["training"] == {"examples": 12, "cited": 9, "refusals": 1, "unsupported": 2, "citations": 9}
    assert context["passages"] == 5 and context["distractors"] == 2 and context["evaluation"] is None
    assert any("2 of 12 training examples have no passage" in w for w in payload["warnings"])
    meta = json.loads((Path(payload["path"]) / "meta.json").read_text())
    assert meta["context"] == context and meta["hyperparameters"]["max_length"] == 2048
    assert "with context:" in result.stderr  # the pairing's summary line


def test_cli_with_context_names_a_missing_index(home: Path, tmp_path: Path) -> None:
    data = _write_examples(tmp_path / "house.jsonl")
    result = CliRunner().invoke(main, ["tune", str(data), "--with-context", str(tmp_path / "nowhere"), "--json"])
    body = json.loads(result.stdout)
    assert result.exit_code == 1 and body["error"]["code"] == "not_found" and "nowhere" in body["error"]["message"]
    assert not (home / "adapters" / "house").exists() or not list((home / "adapters" / "house").glob("v*"))
