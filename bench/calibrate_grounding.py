"""Calibrate the grounding threshold: support of answer sentences by their own filing vs another's.

Each claim of the reference answers in a QA file (source lines dropped) is scored the way the
grounding check scores it (``hybrid.grounding.best_score``: content-word overlap with the best
passage, 0 when a number is missing there) against the ``k`` passages retrieved *for that
sentence*:

- *own*: from the documents its question is about (``Source Docs``, a glob such as ``*AAPL*``):
  the sentence's facts are there, if retrieval finds them;
- *other*: from the same kind of filing by another company (``*MSFT*`` for ``*AAPL*``): the
  same vocabulary ("net sales", "three months ended"), different facts. A grounding check must
  reject these.

Prints both distributions (and *other* without the number rule, to show what it buys) and,
for candidate thresholds, the share of each side that passes. Needs an index built with
``hybrid ingest`` of the corpus.

    .venv/bin/python bench/calibrate_grounding.py --index /tmp/sec-index \
        --qa ../shared/data/qa/sec10q_qna.csv
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, bench/ comes first on sys.path and bench/ingest.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from hybrid import Pipeline, load_settings  # noqa: E402
from hybrid.grounding import Evidence, best_score, is_claim  # noqa: E402
from hybrid.text import sentence_spans, support  # noqa: E402

_COMPANY = re.compile(r"([A-Z]{3,5})\*?$")
_SOURCE_LINE = re.compile(r"^\s*(?:\(?SOURCE|SOURCE\(S\))", re.IGNORECASE)


def _fix(text: str) -> str:
    """Undo the UTF-8-read-as-cp1252 damage in the QA file ("Companyâ€™s")."""
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _claims(answer: str) -> list[str]:
    lines = [line for line in _fix(answer).splitlines() if line.strip() and not _SOURCE_LINE.match(line)]
    text = re.sub(r"\(SOURCE[^)]*\)", "", "\n".join(lines))
    return [s for a, b in sentence_spans(text) if is_claim(s := text[a:b].strip(" -*"))]


def _summary(name: str, scores: list[float]) -> str:
    q = statistics.quantiles(scores, n=20)
    return f"{name:>26}: n={len(scores)} p5={q[0]:.2f} p25={q[4]:.2f} median={q[9]:.2f} p75={q[14]:.2f} p95={q[18]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index directory of the corpus")
    parser.add_argument("--qa", required=True, help="CSV with Question, Source Docs and Answer columns")
    parser.add_argument("-k", type=int, default=5, help="passages per question [5]")
    parser.add_argument("--type", default=None, help="only questions of this 'Question Type'")
    args = parser.parse_args()

    with open(args.qa, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Question") and r.get("Answer")]
    if args.type:
        rows = [r for r in rows if r.get("Question Type") == args.type]
    pipe = Pipeline(load_settings(index=args.index))
    companies = sorted({m.group(1) for r in rows if (m := _COMPANY.search(r.get("Source Docs", "")))})
    own: list[float] = []
    other: list[float] = []
    words_only: list[float] = []
    for row in rows:
        company = _COMPANY.search(row.get("Source Docs", ""))
        if company is None:
            continue
        rival = f"*{companies[(companies.index(company.group(1)) + 1) % len(companies)]}*"
        for claim in _claims(row["Answer"]):
            mine = [Evidence.of(h.text) for h in pipe.search(claim, k=args.k, sources=[row["Source Docs"]])]
            theirs = [Evidence.of(h.text) for h in pipe.search(claim, k=args.k, sources=[rival])]
            own.append(best_score(claim, mine))
            other.append(best_score(claim, theirs))
            words_only.append(max((support(claim, set(e.words)) for e in theirs), default=0.0))
    print(f"{len(rows)} questions, {len(own)} answer sentences that make a claim, k={args.k}")
    print(_summary("own", own))
    print(_summary("other", other))
    print(_summary("other, numbers not checked", words_only))
    print("threshold  own passes  other passes  (numbers not checked)  balanced accuracy")
    for t in (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7):
        p_own = sum(s >= t for s in own) / len(own)
        p_other = sum(s >= t for s in other) / len(other)
        p_words = sum(s >= t for s in words_only) / len(words_only)
        print(f"{t:9.2f}  {p_own:10.1%}  {p_other:12.1%}  {p_words:21.1%}  {(p_own + 1 - p_other) / 2:17.1%}")
    pipe.close()


if __name__ == "__main__":
    main()
