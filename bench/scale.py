"""Query latency, recall@10 and memory of the vector index on synthetic chunks, by size.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py --sizes 10000 100000 1000000 [--json]

For each size it builds two indexes over the same vectors: `exact` (a flat scan, whatever the
size) and `adaptive` (what `ingest.vectors.VectorIndex` picks: exact up to EXACT_MAX, IVF
above, nprobe calibrated at build time). Each is saved, then loaded in a fresh process twice,
read into memory and memory-mapped, to measure load time, resident memory added and the
latency of single queries (k=10). Recall@10 is measured against exact search on queries that
are not in the index.

The vectors are 384-dim unit vectors (all-MiniLM-L6-v2's size) from a seeded three-level
Gaussian mixture: 16 topics, 512 clusters around them, points spread over a 128-dim subspace of
their cluster plus isotropic noise. Neighbours have cosine 0.5-0.6, as chunks embedded with
MiniLM do, and the clusters overlap enough that IVF needs a calibrated nprobe.

1M vectors take about 1.5 GiB per copy. The main process holds up to three copies at once
(the data, an index, its build), the probe process one: about 6 GiB in all, by that count.
The run of 10k, 100k and 1M took under 6 minutes on 2 cores.

With --pgvector, each size is also loaded into PostgreSQL with pgvector (what a
``postgresql://`` index uses: ``ingest.postgres``), an HNSW index (m 16, ef_construction 64,
pgvector's defaults and ours) is built over it, and single queries are timed and scored the
same way, at ef_search 40 (pgvector's default), 100, 200 and 400 (``--ef-search``; a search
with hybrid's default 50 candidates sets 200). Give a URL, or none to start a
PostgreSQL from the pgserver wheel in the temporary directory. The database holds one more copy
of the vectors, on disk.

Progress goes to stderr; stdout gets the table, or one JSON document with --json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

# The repository root first: run as `python bench/scale.py`, Python puts bench/ on the path,
# where bench/ingest.py would shadow the ingest package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import ivf  # noqa: E402
from ingest.vectors import EXACT_MAX, FAISS_FILE, VectorIndex  # noqa: E402

DIM = 384
K = 10
GENERATION = 1
_MIB = 1024 * 1024


def mixture(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """n unit vectors from the fixed mixture described in the module doc; seed picks the points."""
    topics, clusters, rank = 16, 512, 128
    fixed = np.random.default_rng(1234)  # the mixture is the same for every seed
    topic = fixed.standard_normal((topics, dim), dtype=np.float32)
    centres = topic[fixed.integers(topics, size=clusters)]
    centres += 0.4 * fixed.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Each cluster spreads along `rank` random directions of norm about 1.
    bases = fixed.standard_normal((clusters, rank, dim), dtype=np.float32) / np.sqrt(dim)
    rng = np.random.default_rng(seed)
    label = rng.integers(clusters, size=n)
    out = np.empty((n, dim), dtype=np.float32)
    for c in range(clusters):
        rows = np.flatnonzero(label == c)
        along = rng.standard_normal((len(rows), rank), dtype=np.float32) @ bases[c]
        noise = rng.standard_normal((len(rows), dim), dtype=np.float32)
        out[rows] = centres[c] + 0.9 / np.sqrt(rank) * along + 0.7 / np.sqrt(dim) * noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def measure_size(n: int, queries: int, exact_max: int, work: Path) -> list[dict]:
    """Build, save and probe both variants for n vectors; one result dict per variant."""
    started = time.perf_counter()
    vectors = mixture(n, seed=1)
    ids = np.arange(1, n + 1, dtype=np.int64)  # like chunks.id
    query = mixture(queries, seed=2)
    _, rows = faiss.knn(query, vectors, K, metric=faiss.METRIC_INNER_PRODUCT)
    np.save(work / "queries.npy", query)
    np.save(work / "truth.npy", ids[rows])
    _log(f"{n:,}: data and exact neighbours in {time.perf_counter() - started:.1f} s")
    results = []
    for variant, limit in (("exact", n), ("adaptive", exact_max)):
        started = time.perf_counter()
        index = VectorIndex.build(ids, vectors, exact_max=limit)
        build_s = time.perf_counter() - started
        if variant == "adaptive" and index.kind == "exact":
            results.append({**results[0], "variant": variant})  # the same structure
            continue
        folder = work / variant
        folder.mkdir()
        index.save(folder, GENERATION)
        info = index.describe()
        del index
        _log(f"{n:,} {variant} ({info['kind']}): built in {build_s:.1f} s; probing")
        # recall_at_10 in `info` is the build's own estimate; the probes measure recall_read/mmap.
        row = {"size": n, "variant": variant, **info, "build_s": round(build_s, 2)}
        row["disk_mib"] = round((folder / FAISS_FILE).stat().st_size / _MIB, 1)
        for mode in ("read", "mmap"):
            probe = _run_probe(folder, work, n, limit, mode)
            row.update({f"{key}_{mode}": value for key, value in probe.items()})
        results.append(row)
    return results


def measure_pgvector(n: int, url: str, work: Path, ef_searches: tuple[int, ...] = (40, 100, 200, 400)) -> list[dict]:
    """Load the size's vectors into a pgvector table, build HNSW, time and score single queries."""
    import psycopg

    vectors = mixture(n, seed=1)
    query = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("DROP TABLE IF EXISTS bench_scale")
        conn.execute(f"CREATE TABLE bench_scale (id bigint PRIMARY KEY, embedding vector({DIM}) NOT NULL)")
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("COPY bench_scale (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            for start in range(0, n, 50_000):
                copy.write(_binary_rows(np.arange(start + 1, min(n, start + 50_000) + 1), vectors[start:start + 50_000], start == 0))
            copy.write(np.array([-1], dtype=">i2").tobytes())
        load_s = time.perf_counter() - started
        _log(f"{n:,} pgvector: loaded in {load_s:.1f} s; building HNSW")
        conn.execute("SET maintenance_work_mem = '8GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {max(0, (os.cpu_count() or 1) - 1)}")
        started = time.perf_counter()
        conn.execute("CREATE INDEX ON bench_scale USING hnsw (embedding vector_ip_ops)")
        build_s = time.perf_counter() - started
        size = conn.execute("SELECT pg_relation_size(indexrelid) FROM pg_index WHERE indrelid = 'bench_scale'::regclass AND NOT indisprimary").fetchone()[0]
        _log(f"{n:,} pgvector: HNSW built in {build_s:.1f} s; querying")
        rows = []
        for ef in ef_searches:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            latencies, found = [], []
            for q in query:
                text = "[" + ",".join(repr(float(x)) for x in q) + "]"
                started_ns = time.perf_counter_ns()
                ids = conn.execute("SELECT id FROM bench_scale ORDER BY embedding <#> %s::vector LIMIT %s", (text, K)).fetchall()
                latencies.append((time.perf_counter_ns() - started_ns) / 1e6)
                found.append(np.array([r[0] for r in ids], dtype=np.int64))
            rows.append({
                "size": n, "variant": f"pgvector hnsw ef_search {ef}", "kind": "hnsw", "load_s": round(load_s, 1),
                "build_s": round(build_s, 1), "index_mib": round(size / _MIB, 1),
                "p50_ms": round(float(np.percentile(latencies, 50)), 3),
                "p95_ms": round(float(np.percentile(latencies, 95)), 3),
                "recall": round(ivf.recall_at_k(found, list(truth)), 4),
            })
        conn.execute("DROP TABLE bench_scale")
    return rows


def _binary_rows(ids: np.ndarray, vectors: np.ndarray, header: bool) -> bytes:
    """Rows of PostgreSQL's binary COPY format: (bigint id, pgvector) each."""
    dim = vectors.shape[1]
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("vec_len", ">i4"),
                    ("dim", ">u2"), ("unused", ">u2"), ("values", ">f4", (dim,))])
    out = np.empty(len(ids), dtype=row)
    out["fields"], out["id_len"], out["id"] = 2, 8, ids
    out["vec_len"], out["dim"], out["unused"], out["values"] = 4 + 4 * dim, dim, 0, vectors
    start = b"PGCOPY\n\xff\r\n\x00" + np.zeros(2, dtype=">i4").tobytes() if header else b""
    return start + out.tobytes()


def pg_table(results: list[dict]) -> str:
    head = "| chunks | index | load s | build s | index MiB | recall@10 | p50 ms | p95 ms |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['variant']} | {r['load_s']:.1f} | {r['build_s']:.1f} | {r['index_mib']:.0f} "
            f"| {r['recall']:.3f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} |"
        )
    return "\n".join(lines)


def probe(folder: Path, work: Path, count: int, exact_max: int, mmap: bool) -> dict:
    """Load an index in this (fresh) process and time single queries; returns the figures."""
    query = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    before = _rss()
    started = time.perf_counter()
    index = VectorIndex.load(folder, GENERATION, count, DIM, mmap=mmap, exact_max=exact_max)
    load_s = time.perf_counter() - started
    if index is None:
        raise SystemExit(f"cannot load the index in {folder}")
    loaded = _rss()
    latencies, found = [], []
    for q in query:
        started = time.perf_counter_ns()
        hits = index.search(q, K)
        latencies.append((time.perf_counter_ns() - started) / 1e6)
        found.append(np.array([row for row, _ in hits], dtype=np.int64))
    after = _rss()
    return {
        "load_s": round(load_s, 3),
        "rss_load_mib": round((loaded["VmRSS"] - before["VmRSS"]) / 1024, 1),
        "rss_mib": round((after["VmRSS"] - before["VmRSS"]) / 1024, 1),
        "rss_private_mib": round((after["RssAnon"] - before["RssAnon"]) / 1024, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p95_ms": round(float(np.percentile(latencies, 95)), 3),
        "recall": round(ivf.recall_at_k(found, list(truth)), 4),
    }


def table(results: list[dict]) -> str:
    """The results as a Markdown table."""
    head = (
        "| chunks | index | build s | nlist / nprobe | recall@10 | p50 ms | p95 ms | p50 ms mmap "
        "| RSS MiB read | RSS MiB mmap: loaded / queried (private) | disk MiB "
        "| load s read / mmap |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        cells = "" if r["kind"] == "exact" else f"{r['nlist']} / {r['nprobe']}"
        lines.append(
            f"| {r['size']:,} | {r['variant']} ({r['kind']}) | {r['build_s']:.1f} | {cells} "
            f"| {r['recall_read']:.3f} | {r['p50_ms_read']:.2f} | {r['p95_ms_read']:.2f} "
            f"| {r['p50_ms_mmap']:.2f} | {r['rss_mib_read']:.0f} "
            f"| {r['rss_load_mib_mmap']:.0f} / {r['rss_mib_mmap']:.0f} "
            f"({r['rss_private_mib_mmap']:.0f}) | {r['disk_mib']:.0f} "
            f"| {r['load_s_read']:.2f} / {r['load_s_mmap']:.3f} |"
        )
    return "\n".join(lines)


def _run_probe(folder: Path, work: Path, count: int, exact_max: int, mode: str) -> dict:
    # A fresh process, so the memory figures hold only what loading and searching added.
    args = [sys.executable, __file__, "--probe", str(folder), "--work", str(work)]
    args += ["--count", str(count), "--exact-max", str(exact_max), "--mode", mode]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"probe {mode} of {folder} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _rss() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process, in KiB (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0])
    return fields


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="single queries per probe")
    parser.add_argument("--exact-max", type=int, default=EXACT_MAX, help="the adaptive threshold")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--pgvector", nargs="?", const="", default=None, metavar="URL",
        help="also measure pgvector HNSW (a PostgreSQL URL, or none to start one from the pgserver wheel)",
    )
    parser.add_argument("--ef-search", default="40,100,200,400", help="pgvector ef_search values, comma-separated")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["read", "mmap"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        figures = probe(args.probe, args.work, args.count, args.exact_max, args.mode == "mmap")
        print(json.dumps(figures))
        return 0
    if not Path("/proc/self/status").is_file():
        parser.error("the memory figures read /proc/self/status: run this on Linux")
    if min(args.sizes) <= K or args.queries < 1:
        parser.error(f"sizes must exceed {K} and --queries must be at least 1")
    results, pg_results = [], []
    with tempfile.TemporaryDirectory(prefix="hybrid-scale-pg-") as pg_work:
        url = args.pgvector
        if url == "":
            import pgserver

            url = pgserver.get_server(pg_work, cleanup_mode="stop").get_uri()
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="hybrid-scale-") as work:
                results.extend(measure_size(n, args.queries, args.exact_max, Path(work)))
                if url is not None:
                    efs = tuple(int(v) for v in args.ef_search.split(","))
                    pg_results.extend(measure_pgvector(n, url, Path(work), efs))
    setup = {
        "date": datetime.date.today().isoformat(),
        "faiss": faiss.__version__,
        "cpus": os.cpu_count(),
        "omp_threads": faiss.omp_get_max_threads(),
        "dim": DIM,
        "queries": args.queries,
        "exact_max": args.exact_max,
    }
    if args.json:
        print(json.dumps({"setup": setup, "results": results, "pgvector": pg_results}, indent=2))
    else:
        print(", ".join(f"{key} {value}" for key, value in setup.items()))
        print(table(results))
        if pg_results:
            print()
            print(pg_table(pg_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
