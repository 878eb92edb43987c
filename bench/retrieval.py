"""Document-level retrieval quality on a QA file with gold source globs (hit@k and MRR).

    .venv/bin/python bench/retrieval.py --corpus ../shared/data/pdfs/sec10q \
        --qa ../shared/data/qa/sec10q_qna.csv

The QA file is a CSV with a ``Question`` column and a ``Source Docs`` column of file-name
globs (``*2023 Q3 AAPL*``; several separated by commas). A question counts as a hit at k when
any of its top-k passages comes from a file matching one of its globs. The index is built
incrementally at --index, so a second run only queries.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import sys
import time
from pathlib import Path

import ingest
from hybrid import Pipeline, load_settings


def _rows(path: Path) -> list[tuple[str, list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return [
            (row["Question"], [g.strip() for g in row["Source Docs"].split(",") if g.strip()])
            for row in csv.DictReader(f)
            if row.get("Question") and row.get("Source Docs")
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/pdfs/sec10q")
    parser.add_argument("--qa", default="../shared/data/qa/sec10q_qna.csv")
    parser.add_argument("--index", default="/tmp/hybrid-calibration-index")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    embedder = ingest.load_embedder()
    ingest.ingest_paths([args.corpus], args.index, embedder, progress=lambda m: print(m, file=sys.stderr))
    index = ingest.Index.open(args.index, embedder)
    pipeline = Pipeline(load_settings(index=args.index), embedder=embedder)
    rows = _rows(Path(args.qa))
    print(f"{len(rows)} questions, {len(index)} chunks")
    for label, search in (("dense only", index.search), ("hybrid.Pipeline", pipeline.search)):
        _report(label, search, rows, args.k)
    return 0


def _report(label: str, search, rows: list[tuple[str, list[str]]], k_max: int) -> None:
    hits_at = {1: 0, 3: 0, k_max: 0}
    reciprocal = 0.0
    started = time.perf_counter()
    for question, globs in rows:
        names = [Path(h.source).name for h in search(question, k=k_max)]
        ranks = [i for i, name in enumerate(names, 1) if any(fnmatch.fnmatch(name, g) for g in globs)]
        if ranks:
            reciprocal += 1 / ranks[0]
            for k in hits_at:
                hits_at[k] += ranks[0] <= k
    ms = 1000 * (time.perf_counter() - started) / len(rows)
    scores = "  ".join(f"hit@{k} {hits_at[k] / len(rows):.3f}" for k in sorted(hits_at))
    print(f"{label:>16}: doc {scores}  MRR@{k_max} {reciprocal / len(rows):.3f}  ({ms:.1f} ms per query)")


if __name__ == "__main__":
    sys.exit(main())
