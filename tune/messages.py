"""Turning one parsed record (a JSON object or a CSV row) into normalised chat messages.

Private to the package: `tune.data` reads files and calls these; each failure is a
`LineProblem` carrying the problem code that the data file's report shows.
"""

from __future__ import annotations

from typing import Any

ROLES = ("system", "user", "assistant")

# Input/output field pairs recognised without flags, in order of preference (case-insensitive
# for CSV headers, exact for JSON keys).
COLUMN_PAIRS = (
    ("input", "output"),
    ("instruction", "response"),
    ("instruction", "output"),
    ("prompt", "completion"),
    ("prompt", "response"),
    ("question", "answer"),
    ("query", "response"),
)


class LineProblem(Exception):
    """One line cannot become an example; ``code`` is the `Problem` code to report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def record_to_messages(record: dict, columns: tuple[str | None, str | None]) -> tuple[dict, ...]:
    """Messages from one JSONL object in any supported format.

    Args:
        record: the parsed JSON object.
        columns: the caller's (input, output) field names, tried before the usual pairs.

    Raises:
        LineProblem: unknown format, bad role, missing output or empty input.
    """
    if "messages" in record:
        return chat_to_messages(record["messages"])
    if "instruction" in record and "input" in record and "output" in record:
        instruction, extra = record["instruction"], record["input"]
        _require_text(instruction, "instruction")
        _require_text(extra, "input")
        prompt = "\n\n".join(part.strip() for part in (instruction or "", extra or "") if part and part.strip())
        return pair_to_messages(record.get("system"), prompt, record["output"])
    for key_in, key_out in (columns, *COLUMN_PAIRS):
        if key_in in record and key_out in record:
            return pair_to_messages(record.get("system"), record[key_in], record[key_out])
    keys = ", ".join(sorted(record)) or "none"
    raise LineProblem(
        "unknown_format",
        f"unknown format (keys: {keys}); use {{\"messages\": [...]}}, {{\"prompt\", \"completion\"}} "
        "or {\"instruction\", \"input\", \"output\"}",
    )


def pair_to_messages(system: Any, prompt: Any, output: Any) -> tuple[dict, ...]:
    """Messages for one input/output pair, with an optional system prompt."""
    _require_text(prompt, "input")
    _require_text(output, "output")
    _require_text(system, "system")
    messages = [{"role": "system", "content": system}] if system and system.strip() else []
    messages += [{"role": "user", "content": prompt or ""}, {"role": "assistant", "content": output or ""}]
    return chat_to_messages(messages)


def chat_to_messages(messages: Any) -> tuple[dict, ...]:
    """Validate and normalise an OpenAI-style message list (multi-turn allowed).

    Raises:
        LineProblem: ``unknown_format``, ``bad_role``, ``missing_output`` or ``empty_input``.
    """
    if not isinstance(messages, list) or not messages:
        raise LineProblem("unknown_format", "\"messages\" must be a non-empty list of {\"role\", \"content\"} objects")
    normalised = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise LineProblem("bad_role", f"message {index + 1} has role {role!r}; use system, user or assistant")
        if role == "system" and index != 0:
            raise LineProblem("bad_role", f"message {index + 1} is a system message; only the first message may be")
        normalised.append({"role": role, "content": _content(message.get("content"), index)})
    if not any(m["role"] == "assistant" for m in normalised):
        raise LineProblem("missing_output", "no assistant reply to learn from; add the house-style output")
    for index, message in enumerate(normalised):
        if message["role"] != "assistant":
            continue
        if not message["content"].strip():
            raise LineProblem("missing_output", f"message {index + 1} (assistant) is empty; add the house-style output")
        asked = [m for m in normalised[:index] if m["role"] == "user"]
        if not asked or not asked[-1]["content"].strip():
            raise LineProblem("empty_input", f"message {index + 1} (assistant) answers no user input; add the input")
    _check_turns(normalised)
    return tuple(normalised)


def _check_turns(messages: list[dict]) -> None:
    """User and assistant take turns, and the last word is the assistant's.

    Chat templates assume alternation (some raise without it), and a user turn left without a
    reply costs tokens and teaches nothing.
    """
    previous = None
    for index, message in enumerate(messages):
        role = message["role"]
        if role == previous and role != "system":
            raise LineProblem(
                "bad_role",
                f"message {index + 1} is a second {role} message in a row; merge the two, or put the "
                f"{'assistant reply' if role == 'user' else 'user turn'} between them",
            )
        previous = role
    if messages[-1]["role"] == "user":
        raise LineProblem(
            "missing_output",
            f"the last message ({len(messages)}, user) gets no assistant reply; add the reply or remove the message",
        )


def _content(content: Any, index: int) -> str:
    # OpenAI chat files may hold content as a list of parts; only text parts can be trained on.
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        content = "".join(str(p.get("text", "")) for p in content)
    if content is None:
        return ""
    if not isinstance(content, str):
        raise LineProblem("unknown_format", f"message {index + 1} has non-text content ({type(content).__name__})")
    return content


def _require_text(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise LineProblem("unknown_format", f"{name} must be text, found {type(value).__name__}")
