"""The strict support check (``hybrid.support``) on negatives built from a QA set, and its
false rejects on the gold answers.

For each question, the *evidence* is the top ``k`` passages retrieved for it from its gold
documents. Each kind of sentence is then checked against that evidence:

- ``gold`` (should pass): the claims of its own gold answer, each against the top ``k``
  passages of the gold documents that the claim itself retrieves (a test of the check, not of
  retrieval). A person's or a model's summary paraphrases and combines passages, so some fail
  honestly; this is the false-reject rate.
- ``other document`` (must fail): claims from the passages the same question retrieves from
  *another company's* filings: the same vocabulary and topic, other facts.
- ``other answer`` (must fail): claims of the gold answer to a question about another company.
- ``shuffled`` (must fail): a claim of the evidence itself with its words in random order.
- ``swapped word`` (must fail): a claim of the evidence itself with one content word replaced
  by a content word of another company's passages that the evidence lacks ("net sales
  increased" -> "net sales declined"): the same sentence, saying another thing.

A negative that appears word for word in the evidence is left out (it is supported). Prints
the rates at the thresholds in use and over a grid, so the thresholds can be chosen here.

    .venv/bin/python bench/support_check.py --home /tmp/hybrid-bench-home \
        --qa ../shared/data/qa/sec10q_qna.csv
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from itertools import product
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from hybrid import Pipeline, load_settings  # noqa: E402
from hybrid.grounding import is_claim  # noqa: E402
from hybrid.qa import read_qa  # noqa: E402
from hybrid.support import units  # noqa: E402
from hybrid.text import content_words, sentence_spans  # noqa: E402

_COMPANY = re.compile(r"\b([A-Z]{3,5})\b")


def claims(text: str) -> list[str]:
    text = re.sub(r"^\s*[-*\u2022]\s*|^\s*\d+\.\s+", "", text, flags=re.MULTILINE)
    return [s for a, b in sentence_spans(text) if is_claim(s := text[a:b].strip())]


def company(globs: list[str]) -> str | None:
    found = {m.group(1) for g in globs for m in _COMPANY.finditer(g)}
    return found.pop() if len(found) == 1 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="HYBRID_HOME with the corpus ingested")
    parser.add_argument("--qa", required=True)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--limit", type=int, default=80, help="questions to use [80]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    swaps = random.Random(args.seed + 1)  # its own, so the other kinds' samples stay as they were
    pipeline = Pipeline(load_settings(home=args.home))
    check = pipeline.support_check()
    items = [i for i in read_qa(args.qa) if company(i.sources)]
    rng.shuffle(items)
    items = items[: args.limit]
    companies = sorted({company(i.sources) for i in items})
    rows: list[tuple[str, object]] = []
    for item in items:
        own = company(item.sources)
        evidence = [h.text for h in pipeline.search(item.question, k=args.k, sources=item.sources)]
        flat = " ".join(" ".join(evidence).split())
        for sentence in claims(item.answer):  # against the passages its own words retrieve: a test of the check, not of retrieval
            own_evidence = [h.text for h in pipeline.search(sentence, k=args.k, sources=item.sources)]
            rows.append(("gold", check.supports(sentence, own_evidence)))
        other = rng.choice([c for c in companies if c != own])
        foreign = pipeline.search(item.question, k=2, sources=[f"*{other}*"])
        for hit in foreign:
            for a, b in units(hit.text):
                sentence = " ".join(hit.text[a:b].split())
                if is_claim(sentence) and sentence not in flat:
                    rows.append(("other document", check.supports(sentence, evidence)))
        stranger = rng.choice([i for i in items if company(i.sources) != own])
        for sentence in claims(stranger.answer)[:3]:
            if " ".join(sentence.split()) not in flat:
                rows.append(("other answer", check.supports(sentence, evidence)))
        own_sentences = [" ".join(t[a:b].split()) for t in evidence for a, b in units(t)]
        own_sentences = [s for s in own_sentences if is_claim(s) and len(s.split()) >= 6]
        for sentence in rng.sample(own_sentences, min(3, len(own_sentences))):
            words = sentence.split()
            shuffled = words[:]
            while shuffled == words:
                rng.shuffle(shuffled)
            rows.append(("shuffled", check.supports(" ".join(shuffled), evidence)))
        known = {w.lower() for w in re.findall(r"[A-Za-z]+", flat)}
        strangers = sorted({w for h in foreign for w in content_words(h.text) if w.isalpha() and len(w) > 3} - known)
        for sentence in swaps.sample(own_sentences, min(3, len(own_sentences))):
            words, meaningful = sentence.split(), content_words(sentence)
            spots = [i for i, w in enumerate(words) if w.isalpha() and w.lower() in meaningful]
            if spots and strangers:
                words[swaps.choice(spots)] = swaps.choice(strangers)
                rows.append(("swapped word", check.supports(" ".join(words), evidence)))

    kinds = ["gold", "other document", "other answer", "shuffled", "swapped word"]
    print(f"{len(items)} questions, k={args.k}; sentences: " + ", ".join(f"{k} {sum(r[0] == k for r in rows)}" for k in kinds))
    print(f"\nat the thresholds in use (coverage {check.min_coverage}, order {check.min_order}, similarity {check.min_similarity}):")
    for kind in kinds:
        share = _accepted(rows, kind, check.min_coverage, check.min_order, check.min_similarity)
        label = "false rejects" if kind == "gold" else "false accepts"
        print(f"  {kind:>15}: {label} {1 - share if kind == 'gold' else share:.3f}")
    print("\ncoverage order similarity | gold rejected | other document / other answer / shuffled / swapped word accepted | worst negative")
    for coverage, order, similarity in product((0.6, 0.7, 0.8), (0.4, 0.5, 0.6), (0.4, 0.5, 0.6, 0.7)):
        shares = {kind: _accepted(rows, kind, coverage, order, similarity) for kind in kinds}
        worst = max(shares[k] for k in kinds[1:])
        print(f"{coverage:>8} {order:>5} {similarity:>10} | {1 - shares['gold']:>13.3f} | "
              f"{shares['other document']:.3f} / {shares['other answer']:.3f} / {shares['shuffled']:.3f} / "
              f"{shares['swapped word']:.3f} | {worst:.3f}")
    return 0


def _accepted(rows, kind: str, coverage: float, order: float, similarity: float) -> float:
    picked = [s for k, s in rows if k == kind]
    if not picked:
        return float("nan")
    ok = [s.numbers and s.polarity and s.unswapped and s.coverage >= coverage and s.order >= order and (s.similarity is None or s.similarity >= similarity)
          for s in picked]
    return sum(ok) / len(ok)


if __name__ == "__main__":
    sys.exit(main())
