"""A bounded load test of a real server: C concurrent clients for T seconds against 127.0.0.1.

    OMP_NUM_THREADS=1 .venv/bin/python bench/load.py --clients 32 --seconds 60 [--home DIR] [--json]

It starts ``hybrid serve`` as a subprocess (uvicorn, the real default models unless HYBRID_*
variables say otherwise) on a free port. With ``--home`` it serves that HYBRID_HOME's index;
without, it builds a small one first: the project's concepts pages rendered to PDF and
ingested into a temporary home. Then each client posts a question to ``/v1/query`` with
``"stream": true`` (``--no-stream``: plain JSON; ``--route search``: ``/v1/search``), reads the
whole reply, and posts the next, until the time is up; answers in flight then finish. A client
that gets a 503 waits what ``Retry-After`` says (capped at the time left), as a polite client
does; ``--no-retry-after`` makes it ask again at once.

It prints the latency percentiles (p50/p95/p99) of the answered requests, the time to the
first streamed token, throughput, counts by status, what /metrics says afterwards (tokens,
queue rejections), and fails
(exit 1) on any 5xx other than 503, or on any request that got no HTTP reply at all: a
request is either served or told to come back, never lost.

The server's gate is set with ``--max-concurrent``, ``--max-queue`` and ``--queue-timeout``
(HYBRID_MAX_CONCURRENT, HYBRID_MAX_QUEUE, HYBRID_QUEUE_TIMEOUT for the server).

    .venv/bin/python bench/load.py --engines 1,4,16 --seconds 60

compares, at each client count and in one run, the in-process server (gate ``--max-concurrent``)
with the same server and index generating on llama.cpp's server (llama-cpp-python's, the
embedded SmolLM2 GGUF; gate as wide as the clients), and measures the decode tokens/s of one
stream on each: a markdown table, or the JSON with --json.

Progress goes to stderr; stdout gets the summary, or one JSON document with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/load.py`: bench/ingest.py would shadow ingest
    sys.path.insert(0, str(ROOT))
if sys.path[1:] and Path(sys.path[1]).resolve() == ROOT / "bench":
    sys.path.pop(1)

QUESTIONS = [
    "When should I fine-tune and when should I use retrieval?",
    "Why does hybrid refuse to answer some questions?",
    "How does the pipeline decide which passages to cite?",
    "What does the LoRA adapter change in an answer?",
    "Which koala subspecies sings opera in the evening?",  # off the corpus: refused, no generation
]
HYBRID = Path(sys.executable).with_name("hybrid")

# The demo starts `hybrid serve` the same way; its helpers wait for /healthz the same way too.
from hybrid.demo import _free_port as free_port  # noqa: E402
from hybrid.demo import _wait_ready as wait_ready  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Results:
    """What the clients saw; appended to from their threads."""

    latencies: list[float] = field(default_factory=list)  # seconds, answered requests (2xx)
    statuses: Counter = field(default_factory=Counter)
    lost: Counter = field(default_factory=Counter)  # transport errors: no HTTP reply
    routes: Counter = field(default_factory=Counter)
    first_token: list[float] = field(default_factory=list)  # seconds to the first streamed token
    lock: threading.Lock = field(default_factory=threading.Lock)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated between the nearest ranks."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q) - 1))]


def build_home(work: Path, env: dict[str, str]) -> Path:
    """A HYBRID_HOME with an index of the project's concepts pages (a few dozen chunks)."""
    from hybrid.demo_pdf import render_markdown_pdfs

    corpus = work / "corpus"
    pages = render_markdown_pdfs(sorted((ROOT / "docs" / "concepts").glob("*.md")), corpus, root=ROOT)
    log(f"ingesting {len(pages)} rendered docs pages into {work / 'home'}")
    done = subprocess.run([str(HYBRID), "ingest", str(corpus), "--json"], env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"hybrid ingest failed with exit code {done.returncode}")
    report = json.loads(done.stdout)
    log(f"index: {report['pages']} pages, {report['chunks']} chunks")
    return work / "home"


def read_reply(response: httpx.Response, started: float) -> tuple[str, float | None]:
    """The answer's route and, for a stream, the seconds to its first token."""
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        response.read()
        return response.json().get("route", "-"), None  # a search reply has no route
    route, first = "?", None
    for line in response.iter_lines():
        if not line.startswith("data: {"):
            continue
        event = json.loads(line[6:])
        if "token" in event and first is None:
            first = time.monotonic() - started
        elif "answer" in event:
            route = event["answer"]["route"]
        elif "error" in event:
            route = "error:" + event["error"]["code"]
    return route, first


def client(base: str, args: argparse.Namespace, until: float, seed: int, results: Results) -> None:
    """One client: a question, the whole reply, the next question, until ``until``."""
    rng = random.Random(seed)
    if args.route == "query":
        path, body = "/v1/query", lambda: {"question": rng.choice(QUESTIONS), "stream": not args.no_stream}
    else:
        path, body = "/v1/search", lambda: {"query": rng.choice(QUESTIONS)}
    with httpx.Client(base_url=base, timeout=httpx.Timeout(600, connect=10)) as http:
        while (started := time.monotonic()) < until:
            try:
                with http.stream("POST", path, json=body()) as response:
                    if response.is_success:
                        route, first = read_reply(response, started)
                    else:
                        response.read()
            except httpx.HTTPError as exc:
                with results.lock:
                    results.lost[type(exc).__name__] += 1
                continue
            elapsed = time.monotonic() - started
            with results.lock:
                results.statuses[response.status_code] += 1
                if response.is_success:
                    results.latencies.append(elapsed)
                    results.routes[route] += 1
                    if first is not None:
                        results.first_token.append(first)
            if response.status_code == 503 and not args.no_retry_after:
                wait = float(response.headers.get("retry-after", "1"))
                time.sleep(max(0.0, min(wait, until - time.monotonic())))


def read_metrics(base: str) -> dict[str, float]:
    """The unlabelled or summed samples of a few /metrics families."""
    wanted = ("hybrid_generated_tokens_total", "hybrid_rejected_total", "hybrid_queue_depth", "hybrid_requests_in_flight")
    sums: dict[str, float] = {}
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", line)
        if match and match.group(1) in wanted:
            name = match.group(1) + (f"{{{match.group(2)}}}" if match.group(1) == "hybrid_rejected_total" else "")
            sums[name] = sums.get(name, 0.0) + float(match.group(3))
    rate = re.findall(r'^hybrid_generation_tokens_per_second_(sum|count)\{route="/v1/query"\} (\S+)$', text, re.M)
    parts = dict(rate)
    if parts.get("count") and float(parts["count"]) > 0:
        sums["mean_tokens_per_second_per_answer"] = float(parts["sum"]) / float(parts["count"])
    return sums


def prepare(args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """A work folder and the server's environment, with an index (``--home``, or built here)."""
    work = Path(tempfile.mkdtemp(prefix="hybrid-load-"))
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    env.pop("HYBRID_CONFIG", None)
    env["HYBRID_HOME"] = str(Path(args.home).resolve()) if args.home else str(work / "home")
    if not args.home:
        build_home(work, env)
    env.pop("HYBRID_API_KEY", None)  # a loopback test server; /metrics is read without a key
    return work, env


def run(args: argparse.Namespace) -> dict:
    work, env = prepare(args)
    return measure(args, work, env, args.clients, args.max_concurrent)


def measure(args: argparse.Namespace, work: Path, env: dict[str, str], clients: int, max_concurrent: int,
            engine: str | None = None) -> dict:
    """Start ``hybrid serve`` (on ``engine``, when given), load it with ``clients`` clients, stop it."""
    env = dict(env, HYBRID_MAX_CONCURRENT=str(max_concurrent), HYBRID_MAX_QUEUE=str(args.max_queue),
               HYBRID_QUEUE_TIMEOUT=str(args.queue_timeout))
    if engine:
        env["HYBRID_ENGINE__URL"] = engine
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = work / f"server-{clients}-{'engine' if engine else 'in-process'}.log"
    log(f"starting hybrid serve on {base}{' --engine ' + engine if engine else ''} (its log: {server_log})")
    with server_log.open("w") as sink:
        server = subprocess.Popen([str(HYBRID), "serve", "--port", str(port)], env=env, stdout=sink, stderr=sink)
    try:
        wait_ready(base, server, args.ready_timeout)  # SystemExit if it dies or stays loading
        fast = wait_fast(base, args.ready_timeout)
        log(f"fast decoding: {fast}")
        log(f"ready; {clients} clients for {args.seconds:g} s against /v1/{args.route}")
        results = Results()
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=client, args=(base, args, until, i, results)) for i in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        metrics = read_metrics(base)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    lat = sorted(results.latencies)
    bad = {str(s): n for s, n in results.statuses.items() if s >= 500 and s != 503}
    return {
        "clients": clients,
        "seconds": args.seconds,
        "wall_s": round(wall, 1),
        "route": args.route,
        "engine": engine,
        "gate": {"max_concurrent": max_concurrent, "max_queue": args.max_queue, "queue_timeout": args.queue_timeout},
        "requests": sum(results.statuses.values()) + sum(results.lost.values()),
        "by_status": {str(s): n for s, n in sorted(results.statuses.items())},
        "lost": dict(results.lost),
        "answered_per_s": round(len(lat) / wall, 3),
        "answers_per_min": round(60 * len(lat) / wall, 1),
        "latency_s": _percentiles(lat),
        "first_token_s": _percentiles(sorted(results.first_token)),
        "server_log": str(server_log),
        "answer_routes": dict(results.routes),
        "metrics": metrics,
        "ok": not bad and not results.lost,
        "unexpected_5xx": bad,
    }


def engine_matrix(args: argparse.Namespace) -> dict:
    """For each client count in ``--engines``: the in-process server, then the same server and
    index generating on llama.cpp's server (the embedded SmolLM2 GGUF), in one run."""
    from tests.support.llama_engine import LlamaServer, embedded_gguf

    work, env = prepare(args)
    counts = [int(c) for c in args.engines.split(",")]
    rows = []
    native = Path(args.llama_server) if args.llama_server else None
    with LlamaServer(embedded_gguf(), log=work / "llama.log", native=native, parallel=args.parallel) as engine:
        log(f"llama.cpp server ({native or 'llama-cpp-python'}, --parallel {args.parallel}) at {engine.url}")
        decode = decode_rates(engine.url, Path(env["HYBRID_HOME"]))
        for clients in counts:
            local = measure(args, work, env, clients, args.max_concurrent)
            remote = measure(args, work, env, clients, max(args.max_concurrent, clients), engine=engine.url)
            ratio = remote["answers_per_min"] / local["answers_per_min"] if local["answers_per_min"] else None
            rows.append({"clients": clients, "in_process": local, "engine": remote,
                         "answers_ratio": round(ratio, 2) if ratio else None})
    engine_name = f"llama-server --parallel {args.parallel}" if native else "llama-cpp-python server"
    return {"engine": engine_name, "matrix": rows, "decode_tokens_per_s": decode, "ok": all(r["in_process"]["ok"] and r["engine"]["ok"] for r in rows)}


def decode_rates(engine_url: str, home: Path) -> dict[str, float]:
    """Decode tokens/s of one stream: llama.cpp's server beside the in-process fast path, on
    the same evidence-sized prompt, prefill excluded (a 1-token reply measures it)."""
    from hybrid import load_settings
    from hybrid.adapters import Adapters
    from tune import Generator

    messages = [{"role": "system", "content": "Answer from the evidence, briefly."},
                {"role": "user", "content": " ".join(QUESTIONS[:4]) * 6 + "\nWrite a long answer about all of this."}]

    def engine_run(max_tokens: int) -> tuple[int, float]:
        started = time.monotonic()
        reply = httpx.post(f"{engine_url}/chat/completions", timeout=300, json={
            "model": "base", "messages": messages, "max_tokens": max_tokens, "temperature": 0})
        return reply.json()["usage"]["completion_tokens"], time.monotonic() - started

    _, prefill = engine_run(1)
    tokens, seconds = engine_run(160)
    rates = {"llama_cpp": round((tokens - 1) / max(1e-6, seconds - prefill), 1)}
    settings = load_settings(home=home)  # the servers' home: its fast-decoding build is theirs too
    generator = Generator.load(Adapters(settings).base_model_dir())
    generator.fast.start(background=False, cache_dir=settings.fast_decode_dir)
    generator.generate(messages, max_new_tokens=8)  # warm
    result = generator.generate(messages, max_new_tokens=160)
    rates["in_process_fast"] = round((result.completion_tokens - 1) / max(1e-6, result.seconds - result.first_token_seconds), 1)
    rates["in_process_state"] = str(generator.fast.status)
    return rates


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"p{q}": (round(v, 3) if (v := percentile(values, q)) is not None else None) for q in (50, 95, 99)}


def wait_fast(base: str, timeout: float) -> str:
    """Wait while the server builds its fast decoding path (HYBRID_FAST_DECODE=auto), so the
    load test measures the server as it runs afterwards; returns the generators' states."""
    deadline = time.monotonic() + timeout
    while True:
        states = list(httpx.get(f"{base}/healthz", timeout=10).json().get("fast_decode", {}).values())
        if all(state != "building" for state in states) or time.monotonic() > deadline:
            return ", ".join(states) or "no generator loaded"
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="HYBRID_HOME with an index [default: build a small one]")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--route", choices=("query", "search"), default="query")
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--queue-timeout", type=float, default=60)
    parser.add_argument("--no-retry-after", action="store_true", help="ask again at once after a 503")
    parser.add_argument("--no-stream", action="store_true", help="plain JSON answers instead of server-sent events")
    parser.add_argument("--ready-timeout", type=float, default=600, help="seconds to wait for the models to load")
    parser.add_argument("--engines", metavar="COUNTS", help="compare the in-process server with llama.cpp's server "
                        "at these client counts, e.g. 1,4,16 (each for --seconds)")
    parser.add_argument("--llama-server", metavar="PATH", help="with --engines: llama.cpp's own llama-server "
                        "executable instead of llama-cpp-python's server")
    parser.add_argument("--parallel", type=int, default=8, help="with --llama-server: replies it batches at once")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    if args.engines:
        summary = engine_matrix(args)
        print(json.dumps(summary, indent=2) if args.json else matrix_text(summary))
        return 0 if summary["ok"] else 1
    summary = run(args)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        lat = summary["latency_s"]
        print(f"{summary['clients']} clients, {summary['seconds']:g} s, /v1/{summary['route']}, gate {summary['gate']}")
        print(f"requests: {summary['requests']}  by status: {summary['by_status']}  lost: {summary['lost'] or 0}")
        print(f"answered: {summary['answered_per_s']}/s  latency p50 {lat['p50']} s  p95 {lat['p95']} s  p99 {lat['p99']} s")
        ftt = summary["first_token_s"]
        print(f"first streamed token: p50 {ftt['p50']} s  p95 {ftt['p95']} s")
        print(f"answers by route: {summary['answer_routes']}")
        print(f"/metrics: {summary['metrics']}")
        print("OK: no 5xx other than 503, no request lost" if summary["ok"] else f"FAILED: {summary['unexpected_5xx']} {summary['lost']}")
    return 0 if summary["ok"] else 1


def matrix_text(summary: dict) -> str:
    lines = ["| clients | in-process answers/min | p50 s | p95 s | llama.cpp answers/min | p50 s | p95 s | ratio | 5xx/lost |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summary["matrix"]:
        local, remote = row["in_process"], row["engine"]
        bad = {**local["unexpected_5xx"], **remote["unexpected_5xx"], **local["lost"], **remote["lost"]}
        lines.append(f"| {row['clients']} | {local['answers_per_min']} | {local['latency_s']['p50']} | {local['latency_s']['p95']} "
                     f"| {remote['answers_per_min']} | {remote['latency_s']['p50']} | {remote['latency_s']['p95']} "
                     f"| {row['answers_ratio']}x | {bad or 0} |")
    rates = summary["decode_tokens_per_s"]
    lines.insert(0, f"engine: {summary['engine']}\n")
    lines.append(f"\ndecode tokens/s of one stream: llama.cpp {rates['llama_cpp']}, in-process {rates['in_process_fast']} "
                 f"(fast path: {rates['in_process_state']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
