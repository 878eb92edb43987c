"""Retrieval quality at document and page level: ours against the LangChain reference.

    .venv/bin/pip install -e '.[bench]'      # the reference needs langchain-community
    .venv/bin/python bench/retrieval.py --corpus ../shared/data/pdfs/sec10q \
        --qa ../shared/data/qa/sec10q_qna.csv

The QA file is read by ``hybrid.qa.read_qa`` (as ``hybrid eval`` reads it): CSV or JSONL with a
question, a gold answer, the gold documents (file names or globs: ``*2023 Q3 AAPL*``, several
separated by commas) and optionally gold pages (``12`` or ``12;14``, or ``name.pdf:12`` to tie
a page to one document). A question is a hit at k when one of its top-k
passages comes from a gold document (doc level) or from a gold page of one (page level).

Without a gold-page column, page labels are derived from the answers: for a question with one
gold document and an ``Answer`` (and, if there is a ``Question Type`` column, of a single-chunk
type), the page of that document sharing the most content words with the answer, if it leads
the runner-up by 20%. These are silver labels: good
for comparing retrievers, not a substitute for human page labels.

Systems: ``reference`` (PyPDFLoader, RecursiveCharacterTextSplitter(1000, 200),
HuggingFaceEmbeddings with the same MiniLM files, FAISS similarity search), ``dense`` (our index,
embeddings only), ``hybrid`` (our index: dense + BM25 fused) and ``pipeline`` (hybrid.Pipeline's
search, which also puts documents about a named company first). Both indexes are built once
and reused, so a second run only queries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from hybrid.qa import QAItem, is_gold, label_pages, read_qa  # noqa: E402

def evaluate(label: str, search, questions: list[QAItem], k: int) -> dict:
    """Hit@1/3/k and MRR@k at document and page level; `search(q, k)` gives (source, page)."""
    levels = {"doc": [], "page": []}
    started = time.perf_counter()
    for q in questions:
        results = search(q.question, k)
        for level in levels:
            if level == "page" and not q.pages:
                continue
            ranks = [
                i for i, (source, page) in enumerate(results, 1)
                if is_gold(q, source, page if level == "page" else None)
            ]
            levels[level].append(ranks[0] if ranks else None)
    ms = 1000 * (time.perf_counter() - started) / max(1, len(questions))
    out = {"system": label, "ms_per_query": round(ms, 1)}
    for level, firsts in levels.items():
        n = max(1, len(firsts))
        out[level] = {"questions": len(firsts), "mrr": sum(1 / r for r in firsts if r) / n}
        for cut in sorted({1, 3, k}):
            out[level][f"hit@{cut}"] = sum(1 for r in firsts if r and r <= cut) / n
    return out


def build_reference(files: list[Path], out: Path):
    """The LangChain pipeline a user writes; reused from `out` if built from the same files."""
    from langchain_community.vectorstores import FAISS

    from bench import reference

    embeddings = reference.embeddings()
    stamp = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]
    if (out / "stamp").is_file() and (out / "stamp").read_text() == stamp:
        return FAISS.load_local(str(out), embeddings, allow_dangerous_deserialization=True)
    print(f"building the reference index in {out} ...", file=sys.stderr)
    store = FAISS.from_documents(reference.split(reference.load_pages(files)), embeddings)
    store.save_local(str(out))
    (out / "stamp").write_text(stamp)
    return store


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="../shared/data/pdfs/sec10q")
    parser.add_argument("--qa", default="../shared/data/qa/sec10q_qna.csv")
    parser.add_argument("--index", default="/tmp/hybrid-bench-index", help="our index (reused)")
    parser.add_argument("--ref-index", default="/tmp/hybrid-bench-reference", help="reference index")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument(
        "--systems", default="reference,dense,hybrid,pipeline", help="comma-separated subset"
    )
    parser.add_argument("--no-answer-pages", action="store_true", help="no silver page labels")
    parser.add_argument(
        "--label-multi-chunk", action="store_true", help="silver-label multi-chunk questions too"
    )
    parser.add_argument("--chunk-size", type=int, default=None, help="our chunking (new --index)")
    parser.add_argument("--chunk-overlap", type=int, default=None)
    parser.add_argument("--chunker", choices=["structure", "plain"], default=None)
    parser.add_argument("--keyword-weight", type=float, default=None, help="search.keyword_weight")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import ingest
    from hybrid import Pipeline, load_settings

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    weight = {} if args.keyword_weight is None else {"keyword_weight": args.keyword_weight}
    questions = [q for q in read_qa(args.qa) if q.sources]
    embedder = ingest.load_embedder()
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    chunking = {
        key: value
        for key, value in (
            ("chunk_size", args.chunk_size),
            ("chunk_overlap", args.chunk_overlap),
            ("chunker", args.chunker),
        )
        if value is not None
    }
    ingest.ingest_paths([args.corpus], args.index, embedder, ingest.IngestConfig(**chunking), progress=log)
    index = ingest.Index.open(args.index, embedder)
    if not args.no_answer_pages:
        n = label_pages(questions, _page_texts(index), any_kind=args.label_multi_chunk)
        if n:
            print(f"page labels derived from the answers for {n} questions", file=sys.stderr)
    searches = {
        "dense": lambda q, k: _pairs(index.search(q, k, mode="dense")),
        "hybrid": lambda q, k: _pairs(index.search(q, k, **weight)),
    }
    if "pipeline" in systems:
        settings = load_settings(index=args.index, search=weight or None)
        pipeline = Pipeline(settings, embedder=embedder)
        searches["pipeline"] = lambda q, k: _pairs(pipeline.search(q, k=k))
    if "reference" in systems:
        files = sorted(Path(args.corpus).rglob("*.pdf"))
        store = build_reference(files, Path(args.ref_index))
        searches["reference"] = lambda q, k: [
            (d.metadata["source"], int(d.metadata.get("page", 0)) + 1)
            for d in store.similarity_search(q, k=k)
        ]
    results = [evaluate(s, searches[s], questions, args.k) for s in systems if s in searches]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{len(questions)} questions, {len(index)} chunks in our index; k={args.k}")
    for r in results:
        for level in ("doc", "page"):
            m = r[level]
            hits = "  ".join(f"{key} {value:.3f}" for key, value in m.items() if key.startswith("hit@"))
            print(
                f"{r['system']:>10} {level:>4} ({m['questions']:>3} q): {hits}  MRR {m['mrr']:.3f}"
                + (f"  ({r['ms_per_query']} ms/query)" if level == "doc" else "")
            )
    return 0


def _pairs(hits) -> list[tuple[str, int]]:
    return [(h.source, h.page) for h in hits]


def _page_texts(index) -> dict[tuple[str, int], str]:
    texts: dict[tuple[str, int], list[str]] = {}
    for row in index._conn.execute("SELECT source, page, text FROM chunks"):
        texts.setdefault((row[0], row[1]), []).append(row[2])
    return {key: "\n".join(parts) for key, parts in texts.items()}


if __name__ == "__main__":
    sys.exit(main())
