"""Reading every example format, and one Problem per bad line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune import DataError, read_examples


def roles(example) -> list[str]:
    return [m["role"] for m in example.messages]


def test_chat_jsonl_with_system_and_multi_turn(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                      {"role": "assistant", "content": "Goodbye."}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Parts"}]},
                      {"role": "assistant", "content": "Joined."}]},
    ])
    examples, problems = read_examples(path)
    assert problems == []
    assert roles(examples[0]) == ["system", "user", "assistant", "user", "assistant"]
    assert examples[1].messages[0]["content"] == "Parts"
    assert [(e.source, e.line) for e in examples] == [(str(path), 1), (str(path), 2)]


def test_prompt_completion_and_instruction_jsonl(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"prompt": "Say hi", "completion": "Hi."},
        {"instruction": "Summarise", "input": "Long text.", "output": "Short."},
        {"instruction": "Greet", "input": "", "output": "Hello."},
        {"question": "Why?", "answer": "Because.", "system": "Be terse."},
    ])
    examples, problems = read_examples(path)
    assert problems == []
    assert examples[0].messages == ({"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi."})
    assert examples[1].messages[0]["content"] == "Summarise\n\nLong text."
    assert examples[2].messages[0]["content"] == "Greet"
    assert roles(examples[3]) == ["system", "user", "assistant"]


def test_csv_detects_columns_and_reports_row_start_lines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(
        "\ufeffid,Instruction,response\n"
        '1,How do I cancel?,"Sorry to hear that.\n\n1. Open Orders.\n2. Press Cancel."\n'
        "2,Where is my parcel?,It is on its way.\n",
        encoding="utf-8",
    )
    examples, problems = read_examples(path)
    assert problems == []
    assert [e.line for e in examples] == [2, 6]
    assert examples[0].messages[1]["content"].endswith("Press Cancel.")


def test_csv_with_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "named.csv"
    path.write_text("ticket,reply,notes\nLost card,We will send a new one.,x\n", encoding="utf-8")
    examples, problems = read_examples(path, input_column="ticket", output_column="reply")
    assert problems == []
    assert examples[0].messages[0]["content"] == "Lost card"
    _, problems = read_examples(path)  # no recognisable pair without the flags
    assert [(p.line, p.code) for p in problems] == [(1, "unknown_format")]
    _, problems = read_examples(path, input_column="nope", output_column="reply")
    assert "nope" in problems[0].message


def test_bad_lines_become_problems_with_line_numbers(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "ok", "completion": "fine"},
        "{not json",
        {"foo": "bar"},
        {"messages": [{"role": "user", "content": "no reply"}]},
        {"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "x"}]},
        {"prompt": "", "completion": "an answer to nothing"},
        {"prompt": "a question", "completion": "   "},
        "[1, 2]",
    ])
    examples, problems = read_examples(path)
    assert [e.line for e in examples] == [1]
    assert [(p.line, p.code) for p in problems] == [
        (2, "malformed_json"), (3, "unknown_format"), (4, "missing_output"), (5, "bad_role"),
        (6, "empty_input"), (7, "missing_output"), (8, "unknown_format"),
    ]
    assert problems[0].to_dict() == {"line": 2, "code": "malformed_json", "message": problems[0].message,
                                     "source": str(path)}


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n\n  \n{"prompt": "c", "completion": "d"}\n')
    examples, problems = read_examples(path)
    assert problems == [] and [e.line for e in examples] == [1, 4]


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="directory"):
        read_examples(tmp_path)


def test_turns_must_alternate_and_end_with_the_assistant(tmp_path: Path, write_jsonl) -> None:
    user, bot = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."})
    path = write_jsonl(tmp_path / "turns.jsonl", [
        {"messages": [user, bot, user, bot]},                                   # 1 ok
        {"messages": [user, user, bot]},                                        # 2 two users in a row
        {"messages": [user, bot, bot]},                                         # 3 two replies in a row
        {"messages": [user, bot, user]},                                        # 4 the last turn unanswered
        {"messages": [{"role": "system", "content": "Be brief."}, user, bot]},  # 5 ok
        {"messages": [user, {"role": "system", "content": "Be brief."}, bot]},  # 6 system not first
    ])
    examples, problems = read_examples(path)
    assert [e.line for e in examples] == [1, 5]
    assert [(p.line, p.code) for p in problems] == [(2, "bad_role"), (3, "bad_role"), (4, "missing_output"), (6, "bad_role")]
    assert "second user message" in problems[0].message and "second assistant message" in problems[1].message
    assert "gets no assistant reply" in problems[2].message


def test_csv_names_the_available_columns_when_a_flag_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "support.csv"
    path.write_text("flags,instruction,category,response\nB,How do I cancel?,ORDER,Open Orders and press Cancel.\n")
    examples, problems = read_examples(path, input_column="instruction", output_column="response")
    assert problems == [] and examples[0].messages[1]["content"] == "Open Orders and press Cancel."
    _, problems = read_examples(path, input_column="question", output_column="response")
    assert [(p.line, p.code) for p in problems] == [(1, "unknown_format")]
    assert "flags, instruction, category, response" in problems[0].message and "'question'" in problems[0].message
