"""The two stores side by side: the embedded index (SQLite + FAISS) and PostgreSQL + pgvector.

    .venv/bin/python bench/stores.py --corpus ../shared/data/pdfs/sec10q \
        --qa ../shared/data/qa/sec10q_qna.csv [--store postgresql://...] [--json]

Ingests the same PDFs with the same embedder (the embedded all-MiniLM-L6-v2) and chunking into a
new index directory and a new PostgreSQL schema, in one run, then puts the same questions to
both: document and page hit@k and MRR (scored as ``bench/retrieval.py`` scores them, with the
same silver page labels), in dense and hybrid (dense + keywords) modes, and the p50 of a query.
Ingest speed is pages per second of each store's whole run (parsing and embedding included, as a
user's ``hybrid ingest`` would take). Without ``--store``, a PostgreSQL with pgvector is started
from the pgserver wheel in a temporary directory, on this machine.

Progress goes to stderr; stdout gets the table, or one JSON document with --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.retrieval import _page_texts, evaluate  # noqa: E402
from hybrid.qa import label_pages, read_qa  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/data/pdfs/sec10q")
    parser.add_argument("--qa", default="../shared/data/qa/sec10q_qna.csv")
    parser.add_argument("--store", default=None, help="a PostgreSQL URL [default: a server started here]")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import ingest

    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    embedder = ingest.load_embedder()
    questions = [q for q in read_qa(args.qa) if q.sources]
    with tempfile.TemporaryDirectory(prefix="hybrid-stores-") as work:
        url = args.store or _start_postgres(Path(work) / "pg")
        url = _fresh_schema(url)
        locations = {"embedded": Path(work) / "index", "postgres": url}
        results, ingests = [], {}
        for store, location in locations.items():
            log(f"ingesting into the {store} store ...")
            report = ingest.ingest_paths([args.corpus], location, embedder)
            ingests[store] = {"pages": report.pages, "chunks": report.chunks, "seconds": report.seconds,
                              "pages_per_s": round(report.pages / report.seconds, 2)}
        with ingest.open_index(locations["embedded"], embedder) as embedded:
            labelled = label_pages(questions, _page_texts(embedded))
            log(f"page labels derived from the answers for {labelled} questions")
        for store, location in locations.items():
            with ingest.open_index(location, embedder) as index:
                for mode in ("dense", "hybrid"):
                    index.search("warm up", k=args.k, mode=mode)
                    times: list[float] = []

                    def search(question: str, k: int, index=index, mode=mode, times=times) -> list[tuple[str, int]]:
                        started = time.perf_counter()
                        hits = index.search(question, k, mode=mode)
                        times.append(1000 * (time.perf_counter() - started))
                        return [(h.source, h.page) for h in hits]

                    result = evaluate(f"{store} {mode}", search, questions, args.k)
                    result["p50_ms"] = round(statistics.median(times), 1)
                    results.append(result)
    payload = {"questions": len(questions), "k": args.k, "ingest": ingests, "search": results}
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    print(_table(payload))
    return 0


def _table(payload: dict) -> str:
    k = payload["k"]
    lines = [f"{payload['questions']} questions, k={k}", "",
             "| store | pages | chunks | ingest s | pages/s |", "|---|---|---|---|---|"]
    for store, m in payload["ingest"].items():
        lines.append(f"| {store} | {m['pages']} | {m['chunks']} | {m['seconds']} | {m['pages_per_s']} |")
    lines += ["", f"| store, mode | doc hit@{k} | page hit@{k} | page MRR | query p50 ms |", "|---|---|---|---|---|"]
    for r in payload["search"]:
        lines.append(
            f"| {r['system']} | {r['doc'][f'hit@{k}']:.3f} | {r['page'][f'hit@{k}']:.3f} | {r['page']['mrr']:.3f} | {r['p50_ms']} |"
        )
    by = {r["system"]: r for r in payload["search"]}
    for mode in ("dense", "hybrid"):
        gap = by[f"postgres {mode}"]["page"][f"hit@{k}"] - by[f"embedded {mode}"]["page"][f"hit@{k}"]
        lines.append(f"{mode}: page hit@{k} postgres minus embedded = {gap:+.3f}")
    return "\n".join(lines)


def _start_postgres(directory: Path) -> str:
    import pgserver

    server = pgserver.get_server(directory, cleanup_mode="stop")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    return server.get_uri()


def _fresh_schema(url: str) -> str:
    """A URL whose tables go into a new schema, so a run never reuses an earlier one's index."""
    from urllib.parse import quote

    import psycopg

    schema = f"bench_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema},public')}"


if __name__ == "__main__":
    sys.exit(main())
