"""Calibrate the refusal threshold: best-passage scores of covered vs uncovered questions.

Ingests a corpus with the chosen embedder (incremental: a second run reuses the index), then
scores every question of a QA file (covered: their answers are in the corpus) and every line of
an off-corpus question list (not covered). Prints both score distributions, and for candidate
thresholds the share of covered questions answered and of uncovered ones refused; the chosen
value maximises balanced accuracy, with ties broken towards answering.

    .venv/bin/python bench/calibrate_refusal.py \
        --corpus ../shared/data/pdfs/sec10q --qa ../shared/data/qa/sec10q_qna.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, bench/ comes first on sys.path and bench/ingest.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import ingest  # noqa: E402


def _questions(path: Path) -> list[str]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            return [row["Question"] for row in csv.DictReader(f) if row.get("Question")]
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _summary(name: str, scores: list[float]) -> str:
    q = statistics.quantiles(scores, n=20)
    return f"{name:>9}: n={len(scores)} min={min(scores):.3f} p5={q[0]:.3f} p25={q[4]:.3f} median={q[9]:.3f} p75={q[14]:.3f} max={max(scores):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/pdfs/sec10q")
    parser.add_argument("--qa", default="../shared/data/qa/sec10q_qna.csv")
    parser.add_argument("--off", default=str(HERE / "data" / "off_corpus_questions.txt"))
    parser.add_argument("--index", default="/tmp/hybrid-calibration-index")
    parser.add_argument("--embedder", default=None)
    args = parser.parse_args()

    embedder = ingest.load_embedder(args.embedder)
    report = ingest.ingest_paths([args.corpus], args.index, embedder, progress=lambda m: print(m, file=sys.stderr))
    print(f"index: {args.index} ({report.files_added} added, {report.files_unchanged} unchanged) embedder {embedder.name}")
    index = ingest.Index.open(args.index, embedder)
    # As hybrid.guidance.decide does: the best cosine among the k = 5 passages retrieved.
    covered = [_best(index, q) for q in _questions(Path(args.qa))]
    uncovered = [_best(index, q) for q in _questions(Path(args.off))]
    print(_summary("covered", covered))
    print(_summary("uncovered", uncovered))
    best = (0.0, 0.0)
    print("threshold  answered(covered)  refused(uncovered)  balanced")
    for step in range(10, 61):
        t = step / 100
        answered = sum(s >= t for s in covered) / len(covered)
        refused = sum(s < t for s in uncovered) / len(uncovered)
        balanced = (answered + refused) / 2
        if step % 5 == 0:
            print(f"  {t:.2f}        {answered:6.1%}             {refused:6.1%}         {balanced:.3f}")
        if balanced > best[1] + 1e-9:
            best = (t, balanced)
    print(f"chosen threshold: {best[0]:.2f} (balanced accuracy {best[1]:.3f})")
    return 0


def _best(index: ingest.Index, question: str, k: int = 5) -> float:
    return max((h.score for h in index.search(question, k=k)), default=-1.0)


if __name__ == "__main__":
    sys.exit(main())
