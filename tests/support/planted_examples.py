"""A house-style example file with one planted fault per known kind, and the answer key.

Clean lines are varied support answers (no two alike, no facts beyond their question), so that
any line the check flags beyond the planted ones is a false alarm the tests catch.
"""

from __future__ import annotations

import json
from pathlib import Path

VERBS = ["reset", "change", "update", "remove", "cancel", "renew", "share", "export", "archive", "restore",
         "rename", "verify", "unlock", "transfer", "download", "upload", "merge", "split", "print", "sync"]
NOUNS = ["password", "address", "invoice", "parcel", "account", "profile", "booking", "voucher", "report",
         "folder", "device", "ticket", "receipt", "payment", "order", "album", "calendar", "contact", "plan",
         "subscription"]
OPENERS = ["Thanks for asking.", "Happy to help.", "Good question.", "Glad you wrote in.", "Of course."]
CLOSERS = ["Write back if anything is unclear.", "We are here if you need more help.",
           "Let us know how it goes.", "Reply to this message with any follow-up.", "Have a good day."]
# Long enough (70 words) that changing one word keeps over 90% of its word 3-grams.
LONG_REPLY = (
    "Happy to help with that. To move your booking, open the bookings page and pick the booking you "
    "want to move. Choose a new slot from the calendar, check the summary, and confirm the change. "
    "You will get an email with the new details within a few minutes. If the slot you want is taken, "
    "join the waiting list from the same page and we will tell you when it frees up. Thanks for your patience."
)
MAX_TOKENS = 400  # the limit the planted over-long line breaks (tiny tokenizer: clean lines are far shorter)


def chat(user: str, assistant: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": messages + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def clean_examples(n: int) -> list[dict]:
    """``n`` distinct, fact-free house-style pairs (n <= 400)."""
    rows = []
    for i in range(n):
        verb, noun = VERBS[i % len(VERBS)], NOUNS[(i * 7 + i // len(VERBS)) % len(NOUNS)]
        opener, closer = OPENERS[i % len(OPENERS)], CLOSERS[(i // 3) % len(CLOSERS)]
        rows.append(chat(
            f"How do I {verb} my {noun}?",
            f"{opener} To {verb} your {noun}, open the {noun} page, choose {verb}, and follow the steps there. {closer}",
        ))
    return rows


def write_planted(path: Path, clean: int = 30) -> tuple[Path, dict[int, str]]:
    """Write the file; returns it and ``{line: code}`` for every planted fault.

    Lines 1..clean are clean, except that line 2 holds `LONG_REPLY` (the near duplicates' original).
    """
    rows: list = clean_examples(clean)
    rows[1] = chat("How do I move my booking?", LONG_REPLY)
    first, third, fourth = rows[0], rows[2], rows[3]
    planted = [
        ('{"messages": [{"role": "user", "content": "Where is my parcel?"}', "malformed_json"),
        (chat("Can I pay by card?", "   "), "missing_output"),
        ({"messages": [{"role": "customer", "content": "Hello?"}, {"role": "assistant", "content": "Hello."}]}, "bad_role"),
        ({"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Anyone there?"},
                       {"role": "assistant", "content": "Yes, we are here."}]}, "bad_role"),
        ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can we help?"},
                       {"role": "user", "content": "Never mind."}]}, "missing_output"),
        ({"question_text": "What?", "reply_text": "That."}, "unknown_format"),
        (chat("Please read my whole story. " + "The parcel went to the wrong door again and again. " * 120,
              "Sorry about that; we will look into it."), "too_long"),
        (first, "duplicate"),
        (chat(first["messages"][0]["content"], "Open the settings and look around."), "conflict"),
        (chat("how do I move my booking", LONG_REPLY.replace("a few minutes", "a few moments")), "near_duplicate"),
        (chat(fourth["messages"][0]["content"].upper().rstrip("?"), "Ask the team on the help page."), "near_conflict"),
        (chat("When was my account opened?",
              "Your account was opened on 14 March 2023 by Dr Okafor at the Leeds branch."), "fact_leak"),
        (chat(third["messages"][0]["content"].lower() + "!!", third["messages"][1]["content"].upper()), "near_duplicate"),
    ]
    key = {}
    for offset, (row, code) in enumerate(planted):
        rows.append(row)
        key[clean + offset + 1] = code
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path, key
