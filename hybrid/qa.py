"""QA sets: the user's own questions with gold answers, and where their answers are.

A QA file is CSV or JSONL. Each row has a question and a gold answer, and optionally the gold
source (a file name, a path or a glob such as ``*2023 Q3 AAPL*``; several separated by commas)
and the gold page (``12``, ``12;14``, or ``name.pdf:12`` to tie a page to one document).
Column names are matched without regard to case, with the usual variants::

    question: question, query, q
    answer:   answer, gold, gold answer, gold_answer, reference, expected
    source:   source docs, source, sources, document, doc, file
    pages:    source pages, pages, page, gold pages

``read_qa`` reads one; ``is_gold`` says whether a retrieved (source, page) is where the answer
is; ``label_pages`` gives single-document questions silver page labels from their answers.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hybrid.errors import BadRequestError
from hybrid.text import content_words

COLUMNS = {
    "question": ("question", "query", "q"),
    "answer": ("answer", "gold", "gold answer", "gold_answer", "reference", "expected"),
    "source": ("source docs", "source", "sources", "document", "doc", "file"),
    "pages": ("source pages", "pages", "page", "gold pages", "gold_pages"),
    "kind": ("question type", "type", "kind"),
}
# Gold answers written by a model often end with where they came from ("SOURCE(S): a.pdf" or
# "(SOURCE: a.pdf)"): not part of the answer, and not words an answer should be scored on.
_SOURCE_NOTE = re.compile(r"\(\s*sources?\s*:[^)]*\)|^\s*sources?(?:\(s\))?\s*:.*$", re.IGNORECASE | re.MULTILINE)


@dataclass
class QAItem:
    """One question of a QA set.

    Attributes:
        line: where it is in the file (1-based; the header is line 1 of a CSV).
        sources: file names, paths or globs of the documents that hold the answer (may be empty).
        pages: gold pages, by source glob ("*" for any of ``sources``).
        kind: the question's type, when the file has one ("Single-Doc Single-Chunk RAG").
    """

    question: str
    answer: str
    line: int
    sources: list[str] = field(default_factory=list)
    pages: dict[str, set[int]] = field(default_factory=dict)
    kind: str = ""


def read_qa(path: str | Path) -> list[QAItem]:
    """The questions of a CSV or JSONL QA file (``.jsonl``/``.json`` lines are JSON objects).

    Raises:
        BadRequestError: the file is missing or empty, has no question or answer column, or a
            line is not valid (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise BadRequestError(f"no QA file at {path}")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = list(_jsonl_rows(path))
    else:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = [(n, row) for n, row in enumerate(csv.DictReader(f), start=2)]
    if not rows:
        raise BadRequestError(f"{path} has no questions")
    items = []
    for line, row in rows:
        columns = {name: _column(row, names) for name, names in COLUMNS.items()}
        if columns["question"] is None or columns["answer"] is None:
            raise BadRequestError(
                f"{path}, line {line}: needs a question and a gold answer "
                f"(columns or keys named like {COLUMNS['question'][0]!r} and {COLUMNS['answer'][0]!r}); found {sorted(row)}"
            )
        question = _text(row.get(columns["question"]))
        answer = _text(row.get(columns["answer"]))
        if not question or not answer:
            raise BadRequestError(f"{path}, line {line}: the question or the gold answer is empty")
        sources = _text(row.get(columns["source"])) if columns["source"] else ""
        pages = _text(row.get(columns["pages"])) if columns["pages"] else ""
        items.append(QAItem(
            question=question,
            answer=_SOURCE_NOTE.sub("", answer).strip(),
            line=line,
            sources=[s.strip() for s in re.split(r"[,;]", sources) if s.strip()],
            pages=_parse_pages(pages, line, path),
            kind=_text(row.get(columns["kind"])) if columns["kind"] else "",
        ))
    return items


def read_questions(path: str | Path) -> list[str]:
    """Questions alone, one per line of a text file, or the question column of a CSV/JSONL file
    (``--off-corpus``); blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise BadRequestError(f"no question file at {path}")
    if path.suffix.lower() in (".csv", ".jsonl", ".json", ".ndjson"):
        rows = list(_jsonl_rows(path)) if path.suffix.lower() != ".csv" else list(
            enumerate(csv.DictReader(path.open(encoding="utf-8-sig", newline="")), start=2))
        column = _column(rows[0][1], COLUMNS["question"]) if rows else None
        if column is None:
            raise BadRequestError(f"{path} has no question column")
        return [q for _, row in rows if (q := _text(row.get(column)))]
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def is_gold(item: QAItem, source: str, page: int | None = None) -> bool:
    """Whether ``source`` (and ``page``, when given) is where ``item``'s answer is.

    A source matches a gold entry that equals its path or file name, or matches either as a
    glob, ignoring case. With ``page``, the page must be one of the gold pages of that source.
    """
    name = Path(source).name.lower()
    path = source.lower()

    def matches(pattern: str) -> bool:
        pattern = pattern.lower()
        return pattern in (name, path) or fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern)

    if not any(matches(g) for g in item.sources):
        return False
    if page is None:
        return True
    return any(page in pages and (key == "*" or matches(key)) for key, pages in item.pages.items())


def label_pages(items: Sequence[QAItem], page_texts: Mapping[tuple[str, int], str], *, any_kind: bool = False) -> int:
    """Give each single-document question without gold pages the page of its document that
    shares the most content words with its gold answer, when that page leads the runner-up by
    20% and shares at least 5 words; returns how many were labelled.

    These are silver labels: good for comparing retrievers on the same questions, not a
    substitute for pages a person checked. Questions of a multi-passage ``kind`` are left out
    unless ``any_kind``.
    """
    by_source: dict[str, list[tuple[int, set[str]]]] = {}
    for (source, page), text in page_texts.items():
        by_source.setdefault(source, []).append((page, content_words(text)))
    labelled = 0
    for item in items:
        if item.pages or len(item.sources) != 1 or (item.kind and "single-chunk" not in item.kind.lower() and not any_kind):
            continue
        docs = [s for s in by_source if is_gold(item, s)]
        if len(docs) != 1:
            continue
        answer = content_words(item.answer)
        scored = sorted(((len(answer & words), page) for page, words in by_source[docs[0]]), reverse=True)
        if len(scored) >= 2 and scored[0][0] >= 5 and scored[0][0] >= 1.2 * scored[1][0]:
            item.pages = {Path(docs[0]).name: {scored[0][1]}}
            labelled += 1
    return labelled


def _jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRequestError(f"{path}, line {n}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise BadRequestError(f"{path}, line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, {str(k): ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()}))
    return rows


def _column(row: Mapping[str, object], names: Sequence[str]) -> str | None:
    lowered = {key.strip().lower().replace("_", " "): key for key in row if key}
    for name in names:
        key = lowered.get(name.replace("_", " "))
        if key is not None:
            return key
    return None


def _text(value: object) -> str:
    """A cell as clean text: UTF-8 that was read as cp1252 ("Companyâ€™s") repaired."""
    text = "" if value is None else str(value).strip()
    if "\u00e2\u20ac" in text or "\u00c3" in text:
        try:
            text = text.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return text


def _parse_pages(value: str, line: int, path: Path) -> dict[str, set[int]]:
    pages: dict[str, set[int]] = {}
    for part in re.split(r"[;,|]", value):
        part = part.strip()
        if not part:
            continue
        name, _, number = part.rpartition(":") if ":" in part else ("*", "", part)
        number = re.sub(r"^p(?:age)?\.?\s*", "", number.strip(), flags=re.IGNORECASE)
        if not number.isdigit() or int(number) < 1:
            raise BadRequestError(f"{path}, line {line}: {part!r} is not a page (12, or name.pdf:12)")
        pages.setdefault(name.strip() or "*", set()).add(int(number))
    return pages
