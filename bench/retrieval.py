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
    rows = _rows(Path(args.qa))
    hits_at = {1: 0, 3: 0, args.k: 0}
    reciprocal = 0.0
    started = time.perf_counter()
    for question, globs in rows:
        names = [Path(h.source).name for h in index.search(question, k=args.k)]
        ranks = [i for i, name in enumerate(names, 1) if any(fnmatch.fnmatch(name, g) for g in globs)]
        if ranks:
            reciprocal += 1 / ranks[0]
            for k in hits_at:
                hits_at[k] += ranks[0] <= k
    seconds = time.perf_counter() - started
    print(f"{len(rows)} questions, {len(index)} chunks, {1000 * seconds / len(rows):.1f} ms per query")
    for k in sorted(hits_at):
        print(f"doc hit@{k}: {hits_at[k] / len(rows):.3f}")
    print(f"doc MRR@{args.k}: {reciprocal / len(rows):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
