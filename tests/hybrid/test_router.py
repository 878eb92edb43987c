"""The router: only a request that supplies its own text and asks to rewrite it skips retrieval."""

from __future__ import annotations

import pytest

from hybrid.router import route

TEXT = "the engine quit because the tank ran dry, and the pilot landed the airplane in a field"


@pytest.mark.parametrize(
    "request_text",
    [
        f"Rewrite this in our house style: {TEXT}.",
        f"Please rephrase the following:\n{TEXT}",
        f"Can you summarise this paragraph: {TEXT}",
        f'Translate "{TEXT}" into French.',
        f"Format the text below as a bulleted list.\n{TEXT}",
        f"Simplify:\n```\n{TEXT}\n```",
        f"Proofread my draft: {TEXT}",
    ],
)
def test_requests_that_supply_text_to_rewrite_go_to_style(request_text) -> None:
    decision = route(request_text)
    assert decision.route == "style", decision.reason
    assert TEXT in decision.supplied


@pytest.mark.parametrize(
    ("request_text", "why"),
    [
        ("Why did the engine lose power?", "a question"),
        ("What was Apple's revenue in Q3: did it grow compared with the year before?", "a question with a colon"),
        ("Note: I need the total net sales for Apple in the quarter ended June 2022.", "a colon without a rewrite verb"),
        ("Summarise the risk factors in the Q3 filing", "supplies no text"),
        ("Rewrite: revenue grew", "too little text to be a text"),
        ("Summarize Apple's results: revenue, margins, cash flow and outlook for the June quarter", "a topic, not a text"),
        ("Can you summarize what this report says about risk: cybersecurity, supply chains and litigation", "about the documents"),
        ("What does rewrite mean in the style guide: is it a full rewrite of the text?", "starts like a question"),
        ('How did the company describe "supply chain constraints across its largest markets in Asia"?', "quotes to look up"),
    ],
)
def test_everything_else_is_retrieved_for(request_text, why) -> None:
    decision = route(request_text)
    assert decision.route == "retrieve", why
    assert decision.supplied is None and decision.reason
