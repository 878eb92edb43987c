"""Ingest speed: our pipeline against the one a LangChain user writes, on the same PDFs.

    .venv/bin/pip install -e '.[bench]'      # the reference needs langchain-community
    .venv/bin/python bench/ingest.py                       # ../shared/data/pdfs/agency-reports
    .venv/bin/python bench/ingest.py FOLDER --max-pages 0  # every page of FOLDER

The reference is `PyPDFLoader` -> `RecursiveCharacterTextSplitter(chunk_size=1000,
chunk_overlap=200)` -> `HuggingFaceEmbeddings` (the same MiniLM files, normalised) ->
`FAISS.from_documents` -> `save_local`. Ours is `ingest.ingest_paths` with its defaults, into a
fresh index, then again over the unchanged files (the incremental re-run).

Each pipeline runs in its own fresh Python process, in turn, so neither warms the other's caches
or competes for the cores. The clock starts after the embedding model is loaded (the same load
for both) and stops when the index is on disk. Timings on a shared machine are noisy: read the
ratios, and run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and `import ingest` would find this
# file instead of the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))


def pick_files(folder: Path, max_pages: int) -> list[Path]:
    """Whole files in name order until about `max_pages` pages (0: all files)."""
    from pypdf import PdfReader

    files, pages = [], 0
    for path in sorted(folder.rglob("*.pdf")):
        if max_pages and pages >= max_pages:
            break
        try:
            count = len(PdfReader(path).pages)
        except Exception:  # the bench measures speed: unreadable files are left out
            continue
        files.append(path)
        pages += count
    return files


def run_reference(files: list[str], out: str) -> dict:
    from langchain_community.vectorstores import FAISS

    from bench import reference

    embeddings = reference.embeddings()
    embeddings.embed_documents(["warm up"])
    started = time.perf_counter()
    docs = reference.load_pages(files)
    parsed = time.perf_counter()
    chunks = reference.split(docs)
    store = FAISS.from_documents(chunks, embeddings)
    store.save_local(out)
    done = time.perf_counter()
    return {
        "pages": len(docs),
        "chunks": len(chunks),
        "seconds": done - started,
        "parse_seconds": parsed - started,
    }


def run_ours(files: list[str], out: str) -> dict:
    import ingest

    embedder = ingest.load_embedder()
    embedder.embed(["warm up"])
    started = time.perf_counter()
    report = ingest.ingest_paths(files, out, embedder)
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = ingest.ingest_paths(files, out, embedder)
    second = time.perf_counter() - started
    if report.files_failed or again.files_unchanged != report.files_added:
        raise SystemExit(f"unexpected ingest report: {report.to_dict()} / {again.to_dict()}")
    return {
        "pages": report.pages,
        "chunks": report.chunks,
        "seconds": first,
        "reingest_seconds": second,
        "stages": report.timings,
    }


def _child(which: str, files: list[str]) -> dict:
    """Run one pipeline in a fresh interpreter and return its figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{which}-") as tmp:
        result = subprocess.run(
            [sys.executable, __file__, "--child", which, "--out", str(Path(tmp) / "index")],
            input=json.dumps(files),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        )
        if result.returncode != 0:
            raise SystemExit(f"{which} pipeline failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", default="../shared/data/pdfs/agency-reports")
    parser.add_argument(
        "--max-pages", type=int, default=300, help="whole files up to about this many pages; 0: all"
    )
    parser.add_argument("--only", choices=["ours", "reference"], help="run one pipeline")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        files = json.loads(sys.stdin.read())
        run = run_ours if args.child == "ours" else run_reference
        print(json.dumps(run(files, args.out)))
        return 0

    files = [str(p) for p in pick_files(Path(args.folder), args.max_pages)]
    if not files:
        raise SystemExit(f"no readable PDFs in {args.folder}")
    for path in files:  # both pipelines then read from the page cache
        Path(path).read_bytes()
    print(f"{len(files)} files from {args.folder}; {os.cpu_count()} CPUs", file=sys.stderr)
    results = {}
    for which in ("reference", "ours"):
        if args.only in (None, which):
            print(f"running {which} ...", file=sys.stderr)
            results[which] = _child(which, files)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)
    return 0


def _print(results: dict) -> None:
    for which, r in results.items():
        rate = r["pages"] / r["seconds"]
        line = f"{which:>9}: {r['pages']} pages, {r['chunks']} chunks in {r['seconds']:.1f} s ({rate:.1f} pages/s)"
        if "parse_seconds" in r:
            line += f"; parsing {r['parse_seconds']:.1f} s"
        if "stages" in r:
            line += "; " + ", ".join(f"{k} {v:.1f} s" for k, v in r["stages"].items())
        print(line)
    if "reference" in results and "ours" in results:
        ref, ours = results["reference"], results["ours"]
        print(f"speed-up (reference time / ours): {ref['seconds'] / ours['seconds']:.2f}x")
    if "ours" in results:
        ours = results["ours"]
        print(
            f"re-ingest of the unchanged files: {ours['reingest_seconds']:.2f} s, "
            f"{ours['seconds'] / ours['reingest_seconds']:.0f}x faster than the first ingest"
        )


if __name__ == "__main__":
    sys.exit(main())
