"""Reading house-style examples: chat JSONL, prompt/completion JSONL, instruction JSONL, CSV.

Every line (or CSV row) becomes either an `Example` or a `Problem` naming its line, so one bad
line never hides the rest of the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune.errors import DataError
from tune.messages import COLUMN_PAIRS, LineProblem, pair_to_messages, record_to_messages

Columns = tuple[str | None, str | None]
# One row of a file: its 1-based line and a function that parses it (raising LineProblem).
Row = tuple[int, Callable[[], tuple[dict, ...]]]


@dataclass(frozen=True)
class Example:
    """One training conversation, normalised to chat messages.

    Attributes:
        messages: ``{"role": "system"|"user"|"assistant", "content": str}`` dicts, in order.
        source: the file it came from.
        line: 1-based line in that file (CSV: the line on which the row starts).
    """

    messages: tuple[dict, ...]
    source: str
    line: int


@dataclass(frozen=True)
class Problem:
    """Why one line of an example file cannot be used as it is.

    Attributes:
        line: 1-based line (0 when the problem concerns the whole file).
        code: stable identifier, e.g. ``malformed_json``, ``missing_output``, ``duplicate``.
        message: what is wrong and how to fix it.
        source: the file.
    """

    line: int
    code: str
    message: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message, "source": self.source}


def read_examples(
    path: str | Path, *, input_column: str | None = None, output_column: str | None = None
) -> tuple[list[Example], list[Problem]]:
    """Read one example file; the format is detected per line (JSONL) or by the ``.csv`` suffix.

    Args:
        path: a ``.csv`` file, or JSONL under any other suffix.
        input_column: the field or column holding the input; default: detected (input, prompt, ...).
        output_column: the field or column holding the house-style output; default: detected.

    Returns:
        The usable examples and one `Problem` per unusable line, both in file order.

    Raises:
        DataError: the file is missing, is not a file, or a CSV is not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DataError(f"example file {path} {what}; pass a .jsonl or .csv file of examples")
    columns = (input_column, output_column)
    rows = _csv_rows(path, columns) if path.suffix.lower() == ".csv" else _jsonl_rows(path, columns)
    examples, problems = [], []
    for line, parse in rows:
        try:
            examples.append(Example(parse(), str(path), line))
        except LineProblem as exc:
            problems.append(Problem(line, exc.code, exc.message, str(path)))
    return examples, problems


def _jsonl_rows(path: Path, columns: Columns) -> Iterator[Row]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    for number, raw in enumerate(data.splitlines(), start=1):
        if raw.strip():
            yield number, lambda raw=raw, first=number == 1: record_to_messages(_parse_json(raw, first), columns)


def _parse_json(raw: bytes, first: bool) -> dict:
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as exc:
        raise LineProblem("malformed_json", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if first and text.strip() == "[":
        raise LineProblem("unknown_format", "the file is one JSON array; write one JSON object per line (JSONL)")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineProblem("malformed_json", f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(record, dict):
        raise LineProblem("unknown_format", f"expected one JSON object per line, found a {type(record).__name__}")
    return record


def _csv_rows(path: Path, columns: Columns) -> Iterator[Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save the CSV as UTF-8") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader, None)
        if header is None:
            return
        picked = _pick_columns([h.strip() for h in header], columns)
    except (LineProblem, csv.Error) as exc:
        problem = exc if isinstance(exc, LineProblem) else LineProblem("unknown_format", f"bad CSV header: {exc}")
        yield 1, lambda: _raise(problem)
        return
    start = reader.line_num + 1  # a quoted cell may span lines: a row starts after the previous one
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. an unterminated quote: the rest of the file is unreadable
            problem = LineProblem("unknown_format", f"bad CSV from here on: {exc}")
            yield start, lambda: _raise(problem)
            return
        line, start = start, reader.line_num + 1
        if any(cell.strip() for cell in row):
            cells = {key: row[index] if index < len(row) else "" for key, index in picked.items()}
            yield line, lambda cells=cells: pair_to_messages(cells.get("system"), cells["input"], cells["output"])


def _raise(problem: LineProblem) -> tuple[dict, ...]:
    raise problem


def _pick_columns(header: list[str], columns: Columns) -> dict[str, int]:
    lowered = [h.lower() for h in header]

    def find(name: str) -> int | None:
        return lowered.index(name.lower()) if name.lower() in lowered else None

    wanted_in, wanted_out = columns
    for flag, role in ((wanted_in, "input"), (wanted_out, "output")):
        if flag is not None and find(flag) is None:
            raise LineProblem("unknown_format", f"no {role} column {flag!r}; the columns are: {', '.join(header)}")
    for guess_in, guess_out in COLUMN_PAIRS:
        i, o = find(wanted_in or guess_in), find(wanted_out or guess_out)
        if i is not None and o is not None:
            picked = {"input": i, "output": o}
            if (system := find("system")) is not None:
                picked["system"] = system
            return picked
    raise LineProblem(
        "unknown_format",
        f"cannot tell which columns hold the input and the output among: {', '.join(header)}; "
        "name them with --input-column and --output-column",
    )
