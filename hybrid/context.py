"""Context-aware (RAFT-style) training examples: each house-style example paired with sources.

``hybrid tune --with-context INDEX`` rewrites every training and evaluation example into the
conversation the adapter will see when it answers: the serve-time prompt
(``hybrid.prompt.build_messages``) with passages retrieved for the example's question plus
distractors, and the example's reply with ``[n]`` markers after the sentences a shown passage
supports. The adapter then learns the house style *from* sources and to cite them, instead of
learning the style on bare questions and meeting numbered sources only at serve time.

Rules (RAFT, Zhang et al. 2024, adapted to a product whose facts must come from sources):

- Passages: the ``passages - distractors`` best hits for the question (the same retrieval as
  ``Pipeline.ask``) plus ``distractors`` random passages from *other* documents, shuffled, so
  the position of the useful passage teaches nothing.
- Support: a reply sentence with at least ``MIN_CLAIM_WORDS`` content words is supported by the
  shown passage that holds the largest share of them, if that share is at least
  ``MIN_SUPPORT`` (the thresholds ``hybrid.citations`` applies to generated answers, so the
  adapter is trained to cite exactly what the serve-time check accepts). Support is measured on
  the passage text the prompt shows (cut at ``MAX_PASSAGE_CHARS``).
- A reply that no shown passage supports stays in its original form: no invented citations and
  no sources it does not come from. It still trains the style.
- A share (``refusal_share``) of the supported examples is shown only passages that do not
  support the reply (the retrieved ones that missed, plus random ones), and the target becomes
  the refusal (``guidance.REFUSAL``). RAFT keeps the original answer there, to teach recall of
  domain facts from the weights; here that would teach the adapter to state facts its sources
  lack, which is what the grounding check exists to catch, so it learns to say so instead.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from hybrid.citations import MIN_CLAIM_WORDS, MIN_SUPPORT
from hybrid.errors import BadRequestError
from hybrid.guidance import REFUSAL
from hybrid.prompt import MAX_PASSAGE_CHARS, build_messages
from hybrid.text import content_words, sentence_spans, support

from ingest import Hit

if TYPE_CHECKING:
    import ingest
    from tune import Example

# Search: (question, k) -> the best k passages, best first (``Pipeline.search``).
Search = Callable[[str, int], Sequence[Hit]]
# Tries per wanted distractor before giving up on a random page (pages without text have no chunk).
DRAW_TRIES = 20
_END = re.compile(r"[.!?:;]+$")


@dataclass
class ContextReport:
    """What pairing did to one set of examples.

    Attributes:
        examples: examples seen.
        cited: examples now shown passages, with a reply citing them.
        refusals: examples shown only passages that miss, with the refusal as the reply.
        unsupported: examples whose reply no passage supports, kept in their original form.
        citations: ``[n]`` markers added to replies.
    """

    examples: int = 0
    cited: int = 0
    refusals: int = 0
    unsupported: int = 0
    citations: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self, what: str) -> str:
        """One line for the log."""
        return (
            f"with context: {self.cited} of {self.examples} {what} examples cite passages "
            f"({self.citations} citations), {self.refusals} learn to refuse on distractors only, "
            f"{self.unsupported} have no supporting passage and train without sources"
        )

    def warning(self, what: str) -> str | None:
        """What the user should know: examples that train without sources; None if none do."""
        if not self.unsupported:
            return None
        return (
            f"{self.unsupported} of {self.examples} {what} examples have no passage in the index that supports "
            "their reply, so they train in their original form, without sources; ingest the documents "
            "their facts come from, or check that the replies state facts those documents hold"
        )


def pair_with_context(
    examples: Sequence[Example],
    search: Search,
    index: ingest.Index,
    *,
    passages: int = 5,
    distractors: int = 2,
    refusal_share: float = 0.1,
    seed: int = 0,
) -> tuple[list[Example], ContextReport]:
    """Rewrite ``examples`` as serve-time conversations over retrieved passages and distractors.

    Args:
        examples: house-style examples; the question is the last user turn, the reply the last
            assistant turn (earlier turns and the example's own system prompt give way to the
            serve-time prompt).
        search: retrieves the relevant passages for a question.
        index: where distractors are drawn from (random passages of other documents).
        passages: passages per example (``k`` at serve time).
        distractors: how many of them are random passages from other documents.
        refusal_share: share of the supported examples turned into refusals on distractors only.
        seed: makes the distractors, the order and the refusal choice repeatable.

    Returns:
        The new examples in the original order (same ``source``/``line``), and what happened.

    Raises:
        BadRequestError: bad counts or share, or an index without passages.
    """
    check_pairing(passages, distractors, refusal_share)
    documents = [d for d in index.documents() if d["chunks"] > 0]
    if not documents:
        raise BadRequestError(f"the index at {index.path} holds no passages; ingest PDFs into it first")
    rng = random.Random(seed)
    report = ContextReport(examples=len(examples))
    # Per example: (question, passages shown, cited reply, the passage of each marker), or None.
    drafts: list[tuple[str, list[Hit], str, list[int]] | None] = []
    for example in examples:
        question, reply = _turns(example)
        if question is None or reply is None:
            drafts.append(None)
            continue
        shown = list(search(question, passages - distractors))
        shown += _draw(index, documents, rng, distractors, {h.source for h in shown}, {h.chunk_id for h in shown})
        rng.shuffle(shown)
        cited, markers = cite_reply(reply, shown)
        drafts.append((question, shown, cited, markers) if markers else None)
    supported = [i for i, draft in enumerate(drafts) if draft is not None]
    refusing = set(rng.sample(supported, math.floor(len(supported) * refusal_share)))
    out = []
    for i, example in enumerate(examples):
        draft = drafts[i]
        if draft is None:
            report.unsupported += 1
            out.append(example)
            continue
        question, shown, cited, markers = draft
        if i in refusing:
            missing = [h for n, h in enumerate(shown) if n not in markers]
            supporting = {shown[n].source for n in markers}
            missing += _draw(index, documents, rng, passages - len(missing), supporting, {h.chunk_id for h in shown})
            rng.shuffle(missing)
            out.append(_conversation(example, question, missing, REFUSAL))
            report.refusals += 1
        else:
            out.append(_conversation(example, question, shown, cited))
            report.cited += 1
            report.citations += len(markers)
    return out, report


def cite_reply(reply: str, passages: Sequence[Hit]) -> tuple[str, list[int]]:
    """``reply`` with ``[n]`` (prompt numbering) before the end of each supported sentence.

    Returns:
        The cited reply (unchanged outside the markers, line breaks included) and, per marker
        added, the index of the passage it cites (empty: no sentence is supported).
    """
    shown = [content_words(" ".join(p.text.split())[:MAX_PASSAGE_CHARS]) for p in passages]
    pieces: list[str] = []
    markers: list[int] = []
    done = 0
    for a, b in sentence_spans(reply):
        sentence = reply[a:b]
        if not shown or len(content_words(sentence)) < MIN_CLAIM_WORDS:
            continue
        scores = [support(sentence, words) for words in shown]
        best = max(range(len(scores)), key=scores.__getitem__)
        if scores[best] < MIN_SUPPORT:
            continue
        closing = _END.search(sentence)
        end = b - len(closing.group()) if closing else b  # the marker goes before the full stop
        pieces.append(f"{reply[done:end].rstrip()} [{best + 1}]")
        done = end
        markers.append(best)
    pieces.append(reply[done:])
    return "".join(pieces), markers


def check_pairing(passages: int, distractors: int, refusal_share: float) -> None:
    problems = []
    if not isinstance(passages, int) or passages < 1:
        problems.append(f"passages must be at least 1, got {passages!r}")
    elif not isinstance(distractors, int) or not 0 <= distractors < passages:
        problems.append(f"distractors must be from 0 to passages - 1 ({passages - 1}), got {distractors!r}")
    if not 0 <= refusal_share < 1:
        problems.append(f"refusal_share must be in [0, 1), got {refusal_share!r}")
    if problems:
        raise BadRequestError("; ".join(problems))


def _turns(example: Example) -> tuple[str | None, str | None]:
    """The last user turn and the assistant reply after it (None when either is missing)."""
    messages = example.messages
    if not messages or messages[-1]["role"] != "assistant":
        return None, None
    users = [m["content"] for m in messages[:-1] if m["role"] == "user"]
    return (users[-1] if users else None), messages[-1]["content"]


def _conversation(example: Example, question: str, shown: Sequence[Hit], reply: str) -> Example:
    messages = (*build_messages(question, shown), {"role": "assistant", "content": reply})
    return replace(example, messages=tuple(messages))


def _draw(
    index: ingest.Index,
    documents: Sequence[dict],
    rng: random.Random,
    wanted: int,
    avoid_sources: set[str],
    avoid_ids: set[str],
) -> list[Hit]:
    """``wanted`` random passages from documents outside ``avoid_sources`` (any document when
    the index has no other), never one of ``avoid_ids``.

    A passage is drawn as: a random document, a random page of it, a random chunk of that page
    (chunk ids are ``<sha256[:12]>:p<page>:c<i>``, see ``ingest.chunk``).
    """
    pool = [d for d in documents if d["source"] not in avoid_sources] or list(documents)
    drawn: list[Hit] = []
    taken = set(avoid_ids)
    for _ in range(wanted * DRAW_TRIES):
        if len(drawn) == wanted:
            break
        document = rng.choice(pool)
        page = rng.randint(1, max(1, document["pages"]))
        per_page = max(1, math.ceil(document["chunks"] / max(1, document["pages"])))
        chunk = index.chunk(f"{document['sha256'][:12]}:p{page}:c{rng.randrange(per_page)}")
        if chunk is None or chunk.chunk_id in taken:
            continue
        taken.add(chunk.chunk_id)
        drawn.append(Hit(chunk.source, chunk.page, chunk.chunk_id, 0.0, chunk.text))
    return drawn
