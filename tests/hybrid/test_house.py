"""The house frame: an adapter's opening, paragraph labels and closing, learnt from its replies."""

from __future__ import annotations

from hybrid.house import HouseFrame, house_frame

CLOSING = "Please check the cited pages before relying on this summary."


def test_the_frame_is_learnt_from_the_replies() -> None:
    replies = [f"Answer: Item {i} ships in {i} days [1].\n\nDetails: It is in stock [1].\n\n{CLOSING}" for i in range(6)]
    frame = house_frame(replies)
    assert frame == HouseFrame(opening="", labels=("Answer:", "Details:"), closing=CLOSING, separator="\n\n")
    assert frame.wrap(["Refunds take 5 days [1].", "Returns are free [2]."]) == (
        f"Answer: Refunds take 5 days [1].\n\nDetails: Returns are free [2].\n\n{CLOSING}"
    )


def test_an_opening_line_and_no_frame() -> None:
    replies = [f"Thank you for your question.\nYour order {i} is on its way.\nKind regards, the team" for i in range(5)]
    frame = house_frame(replies)
    assert frame.opening == "" and frame.separator == "\n"  # one paragraph each: no opening to tell apart
    paragraphs = [f"Thank you for your question.\n\nYour order {i} is on its way.\n\nKind regards, the team" for i in range(5)]
    frame = house_frame(paragraphs)
    assert frame.opening == "Thank you for your question." and frame.closing == "Kind regards, the team"
    assert not house_frame([f"Plain reply number {i}." for i in range(5)])
    # A repeated line with a number is a fact, not frame.
    assert house_frame([f"Hi.\n\nBody {i}.\n\nCall us on 555 0100." for i in range(5)]).closing == ""
