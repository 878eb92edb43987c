"""Which way a request goes: retrieval (``rag``, or ``refuse``) or a rewrite of supplied text (``style``).

Facts come from the documents, so every request goes through retrieval unless it brings its own
text and only asks to rewrite, format, summarise or translate it. A request is ``style`` when
all three rules hold:

1. **It asks for a rewrite.** One of ``STYLE_VERBS`` ("rewrite", "format", "summarise",
   "translate", ...) is among the first ``VERB_WITHIN`` words, after any politeness ("please",
   "can you").
2. **It supplies the text.** The text comes after a colon or a line break, in quotes, or in a
   fenced block, and has at least ``MIN_SUPPLIED_WORDS`` words.
3. **It points at that text**, not at the documents: the instruction says "this", "the
   following", "below", "my ..." or "house style", or the text is quoted or fenced; and it
   does not start like a question ("What does ...") or mention the documents ("this report",
   "the filing"). "Summarize Apple's results: revenue, margins and outlook" names a topic to
   look up, and goes to retrieval.

Everything else goes to retrieval, where ``hybrid.guidance`` answers (``rag``) or refuses. The
rules look only at the request's wording, so a decision can be explained in one sentence (the
``reason`` of the answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STYLE_VERBS = frozenset(
    """rewrite rephrase reword paraphrase restate format reformat summarise summarize condense shorten
    simplify translate proofread edit polish tidy turn convert""".split()
)
# The verb must come early: "What did the report say when asked to rewrite ..." is a question.
VERB_WITHIN = 4
# Supplied text shorter than this is a topic, not a text ("Summarise: risk factors").
MIN_SUPPLIED_WORDS = 6
# Words in the instruction that point at the supplied text rather than at the documents.
_POINTING = re.compile(
    r"\b(this|these|that text|the following|following|below|above|my|our draft|the text|the passage|"
    r"the paragraph|the sentence|house style|our style)\b",
    re.IGNORECASE,
)
# "this report", "the filing": the instruction is about the documents, not the supplied text.
_DOCUMENTS = re.compile(
    r"\b(?:this|these|that|the|our|your)\s+(?:\w+\s+)?(?:report|reports|document|documents|filing|filings|pdf|pdfs|10-q|"
    r"manual|manuals|collection|sources?|index)\b",
    re.IGNORECASE,
)
# A request that starts like a question asks something, whatever verb follows.
QUESTION_WORDS = frozenset("what why how when where who which whose does do did is are was were".split())
_POLITE = re.compile(r"^(?:(?:please|kindly|can you|could you|would you|will you|i need you to|help me)[\s,]+)+", re.IGNORECASE)
_FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
_QUOTED = re.compile(r"[\"\u201c]([^\"\u201d]+)[\"\u201d]")
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class RouteDecision:
    """Where a request goes and why.

    Attributes:
        route: ``style`` (rewrite the supplied text, no retrieval) or ``retrieve`` (look the
            answer up; ``hybrid.guidance`` then answers or refuses).
        reason: the rule that decided, in words.
        supplied: the text to rewrite (``style`` only), else None.
    """

    route: str
    reason: str
    supplied: str | None = None


def route(request: str) -> RouteDecision:
    """Decide whether ``request`` only asks to rewrite text it supplies (see the module doc)."""
    text = request.strip()
    instruction, supplied, marked = _split(text)
    words = _WORD.findall(_POLITE.sub("", instruction).lower())
    verb = next((w for w in words[:VERB_WITHIN] if w in STYLE_VERBS), None)
    if verb is None or (words and words[0] in QUESTION_WORDS):
        return RouteDecision("retrieve", "the request asks a question, so the answer comes from the documents")
    if supplied is None or len(_WORD.findall(supplied)) < MIN_SUPPLIED_WORDS:
        return RouteDecision(
            "retrieve", f"the request asks to {verb} but supplies no text of its own, so it is looked up in the documents"
        )
    if _DOCUMENTS.search(instruction):
        return RouteDecision(
            "retrieve", f"the request asks to {verb} what the documents say, so it is looked up in them"
        )
    if not marked and not _POINTING.search(instruction):
        return RouteDecision(
            "retrieve", f"the request asks to {verb} a topic rather than the text it gives, so it is looked up in the documents"
        )
    return RouteDecision("style", f"the request asks to {verb} text it supplies, so no documents are consulted", supplied)


def _split(text: str) -> tuple[str, str | None, bool]:
    """(instruction, supplied text or None, whether the text was quoted or fenced)."""
    fenced = _FENCED.search(text)
    if fenced:
        return text[: fenced.start()], fenced.group(1).strip(), True
    quoted = _QUOTED.search(text)
    if quoted and len(quoted.group(1).split()) >= MIN_SUPPLIED_WORDS:
        return text[: quoted.start()], quoted.group(1).strip(), True
    cut = min((i for i in (text.find(":"), text.find("\n")) if i > 0), default=-1)
    if cut < 0:
        return text, None, False
    return text[:cut], text[cut + 1 :].strip() or None, False
