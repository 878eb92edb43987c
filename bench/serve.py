"""Generation speed and server memory: `tune.Generator` against plain transformers + PEFT.

    .venv/bin/python bench/serve.py [--prompts 20] [--tokens 64] [--modes plain fast]
                                    [--adapter DIR] [--long] [--no-rss] [--json]

Each side runs in a fresh process, one after the other, on the embedded SmolLM2-135M-Instruct:

- baseline: the base model in float32 with the LoRA adapter left unmerged (PEFT's wrapper),
  `model.generate` greedy, repetition penalty 1.1, stopping at <|im_end|>;
- ours, per mode: `tune.Generator.load(base, adapter)` (adapter merged) with the same options;
  "plain" decodes with the float32 greedy loop over a KV cache (`tune.decode`), "fast" first
  builds the speculative path (`tune.fastpath`: an int8 draft compiled ahead of time,
  checked by the float32 model, `tune.fastlm`) in an empty cache and reports how long the
  build took.

Both answer the same golden set of chat prompts (up to --tokens new tokens each; with --long,
each prompt carries ~3,000 characters of passages from docs/, 700-1,000 tokens, as retrieval
prompts do: attention then costs more per token). Printed:
prefill seconds per prompt (time to the first new token), decode tokens/s (the tokens after
the first over the time after it), the ratio to the baseline, and how many golden replies are
token-for-token identical to the baseline's (with the first differing position otherwise).
Without --adapter, a random LoRA (r=8 on every projection, seeded) stands in for a trained
one: speed and equivalence do not depend on what the adapter learnt.

Then, unless --no-rss, the resident memory of `hybrid serve` with the default models over a
synthetic 10k-chunk index (random unit vectors under the default embedder's name; the vector
values do not change memory), with fast decoding on ("auto", or HYBRID_FAST_DECODE when set):
read from /proc once /healthz says the fast path is ready and two requests have been answered,
a question (searches the index; random passages get it refused) and a rewrite of supplied text
(the `style` route, which generates, so the model's weights are all paged in), against 1.5 GB,
with the peak (VmHWM) beside it.

The machine is shared: `uptime`'s load is printed with the results, and only ratios within one
run mean anything. Progress goes to stderr; stdout gets the table, or one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/serve.py`: bench/ must not shadow packages

RSS_LIMIT_MB = 1500
QUESTION = "How is a refund processed?"
REWRITE = (
    "Rewrite the following in our house style: the refund for order 1182 was approved today "
    "and the money reaches the card within five working days."
)
CHUNKS = 10_000
REPETITION_PENALTY = 1.1  # Generator's default
# Golden prompts: the kinds of request the server answers (grounded questions, rewrites,
# explanations), long enough to need several dozen tokens.
TOPICS = [
    "how a customer refund is processed and how long it takes",
    "what to do when a shipment arrives damaged",
    "the steps to reset a forgotten account password",
    "why invoices must be approved by two people",
    "how the quarterly budget review works",
    "what the data retention policy requires for emails",
    "how to report a safety incident in the warehouse",
    "the difference between a warranty claim and a return",
    "how overtime is calculated for part-time staff",
    "what happens when a supplier misses a delivery date",
    "how to request remote access to the internal network",
    "why passwords must be rotated every ninety days",
    "how expense reports are reimbursed",
    "the onboarding checklist for a new engineer",
    "how customer complaints are escalated",
    "what the travel policy allows for hotel bookings",
    "how a purchase order is approved",
    "how backups of the customer database are tested",
    "what to include in a handover note at the end of a shift",
    "how the company chooses which features to build next",
]
CONTEXT = (
    "Context: [1] Requests are logged in the service desk within one working day. "
    "[2] A manager approves anything above 500 euros. [3] Customers are told the outcome by email."
)


def golden_messages(count: int, long: bool = False) -> list[list[dict]]:
    """``count`` conversations (cycling through TOPICS, half of them with a context passage).

    ``long``: every prompt carries passages of about 3,000 characters (700-1,000 tokens) from
    this project's docs, as a retrieval prompt does."""
    pages = sorted((ROOT / "docs").glob("*/*.md"))
    conversations = []
    for index in range(count):
        topic = TOPICS[index % len(TOPICS)]
        question = f"Explain {topic}, in a few clear sentences."
        if long:
            passages = pages[index % len(pages)].read_text(encoding="utf-8")[:3000]
            question = f"Passages:\n[1] {passages}\n\nQuestion: {question}"
        elif index % 2:
            question = f"{CONTEXT}\n\nQuestion: {question}"
        conversations.append([{"role": "user", "content": question}])
    return conversations


# -- children: one side each, in a fresh process ------------------------------------------


def run_baseline(base: Path, adapter: Path, prompts: int, tokens: int, long: bool) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tune.encode import render

    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter, is_trainable=False).eval()
    stops = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    options = {
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "repetition_penalty": REPETITION_PENALTY,
        "eos_token_id": stops,
        "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
    }
    replies, prefill, decode_seconds, decode_tokens = [], [], 0.0, 0
    for messages in golden_messages(prompts, long):
        encoded = tokenizer(render(tokenizer, messages, add_generation_prompt=True), return_tensors="pt")
        length = encoded["input_ids"].shape[1]
        with torch.inference_mode():
            started = time.perf_counter()
            model.generate(**encoded, max_new_tokens=1, **options)
            first = time.perf_counter() - started
            started = time.perf_counter()
            output = model.generate(**encoded, max_new_tokens=tokens, **options)
            total = time.perf_counter() - started
        new = output[0, length:].tolist()
        new = new[: next((i + 1 for i, t in enumerate(new) if t in stops), len(new))]
        replies.append(new)
        prefill.append(first)
        decode_seconds += max(total - first, 0.0)
        decode_tokens += len(new) - 1
    return _summary("transformers+PEFT, unmerged, float32, generate", replies, prefill, decode_tokens, decode_seconds)


def run_ours(base: Path, adapter: Path, prompts: int, tokens: int, long: bool, mode: str) -> dict:
    import torch

    from tune import Generator
    from tune.fastpath import FastState

    generator = Generator.load(base, adapter, dtype=torch.float32)
    build = 0.0
    if mode == "fast":
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-fast-") as cache:
            generator.fast.start(background=False, cache_dir=Path(cache))
        build = time.perf_counter() - started
        if generator.fast.status.state is not FastState.READY:
            raise RuntimeError(f"fast decoding did not start: {generator.fast.status}")
    replies, prefill, decode_seconds, decode_tokens = [], [], 0.0, 0
    for messages in golden_messages(prompts, long):
        result = generator.generate(messages, max_new_tokens=tokens, repetition_penalty=REPETITION_PENALTY)
        replies.append(_tokens_of(generator, result.completion_tokens, messages, tokens))
        prefill.append(result.first_token_seconds)
        decode_seconds += result.seconds - result.first_token_seconds
        decode_tokens += result.completion_tokens - 1
    name = {"plain": "tune.Generator, merged, float32 greedy loop", "fast": "tune.Generator, speculative (int8 draft)"}[mode]
    summary = _summary(name, replies, prefill, decode_tokens, decode_seconds)
    summary["build_s"] = build
    return summary


def _tokens_of(generator, count: int, messages: list[dict], tokens: int) -> list[int]:
    # The token ids themselves, for the equivalence check: rerun the same decoding (the
    # public result carries only text) and keep what it yielded.
    import torch

    inputs = generator._inputs(messages)
    with torch.inference_mode():
        ids = [token for token, _ in generator._greedy(inputs, tokens, REPETITION_PENALTY)]
    assert len(ids) == count, "greedy decoding is deterministic"
    return ids


def _summary(name: str, replies: list, prefill: list, decode_tokens: int, decode_seconds: float) -> dict:
    return {
        "name": name,
        "replies": replies,
        "prefill_s": sum(prefill) / len(prefill),
        "decode_tokens": decode_tokens,
        "decode_tok_s": decode_tokens / decode_seconds if decode_seconds > 0 else 0.0,
        "rss_mb": _rss_mb(os.getpid()),
    }


def run_rss(work: Path) -> dict:
    """Start `hybrid serve` over a synthetic 10k-chunk index, ask once, read its memory."""
    index_dir = work / "index"
    _synthetic_index(index_dir, CHUNKS)
    port = _free_port()
    env = dict(os.environ, HYBRID_MAX_NEW_TOKENS="32")
    env.setdefault("HYBRID_FAST_DECODE", "auto")
    env.pop("HYBRID_API_KEY", None)
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("hybrid")), "serve", "--index", str(index_dir), "--port", str(port), "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(server.stdout.readline() or "{}")
        if ready.get("status") != "ready":
            raise RuntimeError(f"hybrid serve did not start (exit {server.poll()})")
        fast = _wait_fast(port)
        idle = _rss_mb(server.pid)
        routes = []
        for question in (QUESTION, REWRITE):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/query",
                data=json.dumps({"question": question}).encode(),
                headers={"Content-Type": "application/json"},
            )
            routes.append(_ask(request))
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
        anon, file = (_status_mb(server.pid, key) for key in ("RssAnon", "RssFile"))
        return {"idle_mb": idle, "rss_mb": _rss_mb(server.pid), "peak_mb": peak, "routes": routes, "fast": fast,
                "anon_mb": anon, "file_mb": file}
    finally:
        server.terminate()
        server.wait(timeout=60)


def _wait_fast(port: int) -> str:
    # The server builds the fast path in the background after start-up; wait for the outcome.
    deadline = time.monotonic() + 900
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
                states = list(json.loads(response.read()).get("fast_decode", {}).values())
        except (urllib.error.URLError, ConnectionError):
            states = []
        if states and all(state != "building" for state in states):
            return ", ".join(states)
        if time.monotonic() > deadline:
            return "still building after 900 s"
        time.sleep(2)


def _ask(request: urllib.request.Request) -> str:
    # The answer's route. "ready" is printed once the models are loaded, a moment before
    # uvicorn listens.
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read())["route"]
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _synthetic_index(path: Path, count: int) -> None:
    import numpy as np

    import ingest
    from ingest.records import Chunk

    embedder = ingest.load_embedder()
    rng = np.random.default_rng(0)
    words = "refund invoice policy shipment approval manager customer budget review access backup".split()
    with ingest.Index.open(path, embedder, create=True) as index, index.writer(ingest.IngestConfig()) as writer:
        per_document = 100
        for document in range(count // per_document):
            source = f"synthetic-{document:04d}.pdf"
            chunks = [
                Chunk(
                    f"{document:012d}:p{i // 4 + 1}:c{i % 4}",
                    source,
                    i // 4 + 1,
                    " ".join(rng.choice(words, size=120)),
                )
                for i in range(per_document)
            ]
            vectors = rng.standard_normal((per_document, embedder.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            writer.put(source, f"{document:064d}", per_document // 4, chunks, vectors)


def _rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, key: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith(key + ":")).split()[1]) / 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the parent: prepare, run the children, compare --------------------------------------


def random_adapter(base: Path, out: Path) -> Path:
    """A seeded random LoRA (r=8, every projection) that visibly changes the model's replies."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False)
    model = get_peft_model(model, config)
    with torch.no_grad():  # PEFT's non-default init is large; shrink it to a plausible update
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(0.05)
    model.save_pretrained(out)
    return out


def _child(argv: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", *argv]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:1])} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    _log(json.dumps({key: value for key, value in result.items() if key != "replies"}))
    return result


def _compare(baseline: list[list[int]], ours: list[list[int]]) -> tuple[int, list[str]]:
    same, where = 0, []
    for number, (a, b) in enumerate(zip(baseline, ours, strict=True)):
        if a == b:
            same += 1
            continue
        position = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        where.append(f"prompt {number}: first difference at new token {position}")
    return same, where


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=20, help="golden prompts")
    parser.add_argument("--tokens", type=int, default=64, help="most new tokens per reply")
    parser.add_argument("--modes", nargs="+", default=["plain", "fast"], choices=["plain", "fast"],
                        help="our decoding to measure: the plain greedy loop, the speculative fast path")
    parser.add_argument("--adapter", type=Path, help="a PEFT adapter directory [default: a random LoRA]")
    parser.add_argument("--long", action="store_true", help="prompts with ~3,000 characters of passages, as retrieval sends")
    parser.add_argument("--no-rss", action="store_true", help="skip the server memory measurement")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        which, *rest = args.child
        if which == "rss":
            print(json.dumps(run_rss(Path(rest[0]))))
        elif which == "baseline":
            print(json.dumps(run_baseline(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]), rest[4] == "long")))
        else:
            print(json.dumps(run_ours(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]), rest[4] == "long", rest[5])))
        return 0

    from tune import resolve_base_model

    base = resolve_base_model(None, Path.home() / ".hybrid" / "models")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        adapter = args.adapter or random_adapter(base, Path(work) / "adapter")
        sizes = [str(base), str(adapter), str(args.prompts), str(args.tokens), "long" if args.long else "short"]
        _log(f"baseline: {args.prompts} prompts x up to {args.tokens} tokens (load {load:.1f})")
        baseline = _child(["baseline", *sizes])
        rows = [baseline]
        for mode in args.modes:
            _log(f"ours, {mode}" + (" (building its packages first: about two minutes without a cache)" if mode == "fast" else ""))
            rows.append(_child(["ours", *sizes, mode]))
        rss = None
        if not args.no_rss:
            _log(f"server memory over a {CHUNKS}-chunk index")
            try:
                rss = _child(["rss", work])
            except RuntimeError as exc:  # keep the speed figures when the server part fails
                _log(str(exc))
                rss = {"error": str(exc).splitlines()[0]}
    load = max(load, os.getloadavg()[0])
    golden = baseline["replies"]
    for row in rows:
        row["ratio"] = row["decode_tok_s"] / baseline["decode_tok_s"]
        row["golden_same"], row["golden_diff"] = _compare(golden, row.pop("replies"))
    if args.json:
        print(json.dumps({"load": load, "prompts": args.prompts, "tokens": args.tokens, "rows": rows, "server": rss}))
        return 0
    kind = "golden prompts with ~3,000 characters of passages" if args.long else "golden prompts"
    print(f"{args.prompts} {kind}, up to {args.tokens} new tokens each; load average up to {load:.1f}")
    print(f"{'':52} {'prefill s':>9} {'decode tok/s':>12} {'ratio':>6} {'golden':>7} {'build s':>7}")
    for row in rows:
        golden = f"{row['golden_same']}/{args.prompts}"
        build = f"{row['build_s']:7.0f}" if row.get("build_s") else ""
        print(f"{row['name']:52} {row['prefill_s']:9.3f} {row['decode_tok_s']:12.1f} {row['ratio']:5.2f}x {golden:>7} {build}")
        for line in row["golden_diff"]:
            print(f"    {line}")
    if rss is not None and "error" in rss:
        print(f"hybrid serve: not measured ({rss['error']})")
    elif rss is not None:
        verdict = "under" if rss["peak_mb"] < RSS_LIMIT_MB else "OVER"
        print(
            f"hybrid serve, {CHUNKS} chunks: {rss['idle_mb']:.0f} MB idle, {rss['rss_mb']:.0f} MB after a query "
            f"(peak {rss['peak_mb']:.0f} MB, {verdict} {RSS_LIMIT_MB} MB; of it {rss['anon_mb']:.0f} MB anonymous, "
            f"{rss['file_mb']:.0f} MB file pages; routes: {', '.join(rss['routes'])}; "
            f"fast decoding: {rss['fast']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
