"""``make demo``: the whole loop on the embedded defaults, through the CLI and the HTTP API.

1. render the project's own docs (docs/) to PDF (or take ``--corpus``) and ``hybrid ingest`` them;
2. write house-style examples (our own, from ``demo_data/``; or take ``--examples``) and
   ``hybrid tune`` a short adapter run;
3. start ``hybrid serve`` on 127.0.0.1 and ask a few questions over ``POST /v1/query``,
   printing each answer with its page citations, then one the documents do not cover;
4. ``hybrid eval``: the scorecard of the house adapter's answers to a small QA set about the
   docs (``demo_data/docs_qa.jsonl``), beside the base model's, in one run.

Everything lives under ``.demo/`` (its own HYBRID_HOME), so the user's data is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hybrid.demo_pdf import render_markdown_pdfs
from hybrid.prompt import build_evidence_messages

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "demo_data"
HOUSE_CLOSING = "Please check the cited pages before relying on this summary."

DEFAULT_QUESTIONS = [
    "How many examples does a LoRA adapter need for meaningful specialisation?",
    "What happens to a PDF that cannot be read during ingest?",
    "What is the boiling point of mercury at sea level?",  # not in the docs: expect a refusal
]
CORPUS_QUESTIONS = {
    "ntsb": [
        "What was the probable cause of the accident involving the Cessna?",
        "What were the weather conditions at the time of the accident?",
        "What is the recommended daily dose of vitamin C?",
    ],
    "sec10q": [
        "What was Apple's total net sales in the third quarter of 2023?",
        "How much did NVIDIA spend on research and development?",
        "What is the boiling point of mercury at sea level?",
    ],
    "agency-reports": [
        "What are the strategic goals of the Office of Personnel Management?",
        "How does the Department of Transportation measure safety performance?",
        "What is the boiling point of mercury at sea level?",
    ],
}


class _Hit:
    """A passage shaped like ``ingest.Hit`` for rendering training prompts."""

    def __init__(self, source: str, page: int, text: str) -> None:
        self.source, self.page, self.text = source, page, text


def house_answer(answer: str, detail: str, n: int) -> str:
    """The demo's house style: a direct answer, one supporting detail, a fixed closing line."""
    return f"Answer: {answer[:-1]} [{n}].\n\nDetails: {detail[:-1]} [{n}].\n\n{HOUSE_CLOSING}"


def write_examples(train_path: Path, eval_path: Path, seed: int = 0) -> tuple[int, int]:
    """Render our house-style items into chat examples in exactly the prompt format of serving
    (the evidence prompt: each item's passage holds one or two sentences).

    Each item is shown with 0-2 distractor passages in random order, so the adapter learns the
    style *and* to cite the passage that answers. A few items pair a question with passages
    that do not answer it, teaching a refusal in house style. The last four items are held out.
    """
    items = json.loads((DATA / "house_style_items.json").read_text())
    rng = random.Random(seed)
    names = ["handbook.pdf", "policy.pdf", "product-guide.pdf", "study-report.pdf", "operations.pdf"]
    rows: dict[str, list[str]] = {"train": [], "eval": []}
    for i, item in enumerate(items):
        split = "eval" if i >= len(items) - 4 else "train"
        others = [x for j, x in enumerate(items) if j != i]
        for variant in range(3):
            passages = [item["passage"]] + [x["passage"] for x in rng.sample(others, variant)]
            rng.shuffle(passages)
            hits = [_Hit(rng.choice(names), rng.randint(1, 40), p) for p in passages]
            n = passages.index(item["passage"]) + 1
            messages = build_evidence_messages(item["question"], hits)
            messages.append({"role": "assistant", "content": house_answer(item["answer"], item["detail"], n)})
            rows[split].append(json.dumps({"messages": messages}))
        if split == "train" and i % 4 == 0:  # a refusal: the sources do not answer the question
            hits = [_Hit(rng.choice(names), rng.randint(1, 40), x["passage"]) for x in rng.sample(others, 2)]
            messages = build_evidence_messages(item["question"], hits)
            messages.append({"role": "assistant", "content": "Answer: The documents do not cover this question.\n\n" + HOUSE_CLOSING})
            rows[split].append(json.dumps({"messages": messages}))
    train_path.write_text("\n".join(rows["train"]) + "\n")
    eval_path.write_text("\n".join(rows["eval"]) + "\n")
    return len(rows["train"]), len(rows["eval"])


def _step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _done(started: float, timings: dict[str, float], name: str) -> None:
    timings[name] = time.perf_counter() - started
    print(f"--- {name}: {timings[name]:.1f} s", flush=True)


def _hybrid(*args: str, env: dict[str, str]) -> dict:
    """Run the ``hybrid`` CLI as a user would; logs stream to our stderr, JSON comes back."""
    exe = Path(sys.executable).with_name("hybrid")
    proc = subprocess.run([str(exe), *args, "--json"], env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"`hybrid {' '.join(args)}` failed with exit code {proc.returncode}")
    return json.loads(proc.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="folder of PDFs [default: the project's docs, rendered to PDF]")
    parser.add_argument("--examples", help="house-style examples [default: the demo's own]")
    parser.add_argument("--question", action="append", help="question to ask (repeatable)")
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("DEMO_EPOCHS", "2")))
    parser.add_argument("--max-steps", type=int, default=int(os.environ.get("DEMO_MAX_STEPS", "40")))
    parser.add_argument("--workdir", default=str(ROOT / ".demo"))
    parser.add_argument("--setup-only", action="store_true",
                        help="ingest and tune, then stop: the index and adapter the README tour reads")
    args = parser.parse_args(argv)

    work = Path(args.workdir).resolve()
    env = dict(os.environ, HYBRID_HOME=str(work / "home"), HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    env.pop("HYBRID_CONFIG", None)
    # Three questions are answered before the server's background build of fast decoding
    # (one to two minutes on two cores) would finish, and would share the CPU with it.
    env.setdefault("HYBRID_FAST_DECODE", "off")
    timings: dict[str, float] = {}
    work.mkdir(parents=True, exist_ok=True)

    t = _step("1/5 ingest: PDFs -> index")
    if args.corpus:
        corpus = Path(args.corpus)
    else:
        corpus = work / "corpus"
        # docs/ only: the README quotes the demo's off-corpus question and its refusal.
        written = render_markdown_pdfs(sorted((ROOT / "docs").rglob("*.md")), corpus, root=ROOT)
        print(f"rendered {len(written)} of the project's own docs to PDF in {corpus}")
    report = _hybrid("ingest", str(corpus), env=env)
    print(f"{report['files_added']} added, {report['files_updated']} updated, {report['files_unchanged']} unchanged, "
          f"{len(report['files_failed'])} failed; {report['pages']} pages, {report['chunks']} chunks")
    _done(t, timings, "ingest")

    t = _step("2/5 tune: house-style examples -> LoRA adapter")
    if args.examples:
        examples, eval_args = args.examples, []
    else:
        train, held_out = work / "house_style.jsonl", work / "house_style_eval.jsonl"
        n_train, n_eval = write_examples(train, held_out)
        print(f"wrote {n_train} training and {n_eval} held-out house-style examples to {work}")
        examples, eval_args = str(train), ["--eval", str(held_out)]
    # A short run on few examples: a higher rate and smaller batches than the defaults (measured:
    # held-out loss 2.26 -> 0.57 in 34 steps at 1e-3, against 2.26 -> 1.68 in 18 at 2e-4).
    result = _hybrid(
        "tune", examples, "--name", "house", "--epochs", str(args.epochs), "--max-steps", str(args.max_steps),
        "--learning-rate", "1e-3", "--batch-size", "4", *eval_args, env=env,
    )
    print(f"trained {result['adapter']} on {result['examples']} examples: train loss {result['train_loss']:.3f}")
    if result.get("eval_loss") is not None:
        print(f"held-out loss: base model {result['base_eval_loss']:.3f} -> adapter {result['eval_loss']:.3f}")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    _done(t, timings, "tune")
    if args.setup_only:
        print("\n=== timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        return 0

    t = _step("3/5 serve: hybrid serve on 127.0.0.1")
    port = _free_port()
    exe = Path(sys.executable).with_name("hybrid")
    server = subprocess.Popen([str(exe), "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server)
        print(f"ready at {base}")
        _done(t, timings, "serve start")
        t = _step("4/5 ask: POST /v1/query")
        questions = args.question or CORPUS_QUESTIONS.get(Path(args.corpus or "").name, DEFAULT_QUESTIONS)
        with httpx.Client(base_url=base, timeout=600) as client:
            for question in questions:
                _print_answer(question, client.post("/v1/query", json={"question": question}).json())
        _done(t, timings, "ask")
    finally:
        server.terminate()
        server.wait(timeout=30)
    if not args.corpus:  # the QA set is about the project's own docs
        t = _step("5/5 eval: the house adapter's answers beside the base model's")
        card = _hybrid("eval", str(DATA / "docs_qa.jsonl"), "--off-corpus", str(DATA / "off_corpus.txt"),
                       "--against", "adapter=none", "--out", str(work / "eval"), env=env)
        _print_scorecard(card)
        shown = (work / "eval").relative_to(ROOT) if (work / "eval").is_relative_to(ROOT) else work / "eval"
        print(f"scorecard, table and plot in {shown}")
        _done(t, timings, "eval")
    print("\n=== timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0


def _wait_ready(base: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"hybrid serve exited with code {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("hybrid serve did not become ready in time")


def _print_scorecard(card: dict) -> None:
    other = card["against"]
    rows = [("answer token F1", "answers", "token_f1"), ("recall of gold words beyond the question", "answers", "beyond_question_recall"),
            ("answer sentences supported", "answers", "supported_sentences"), ("off-corpus questions refused", "refusals", "off_corpus_refused"),
            ("latency p50, s", "latency_ms", "p50")]
    print(f"{'':42} {'house adapter':>14} {'base model':>11}")
    for label, section, key in rows:
        mine, theirs = card[section][key], other[section][key]
        if section == "latency_ms":
            mine, theirs = (None if v is None else v / 1000 for v in (mine, theirs))
        print(f"{label:42} {_figure(mine):>14} {_figure(theirs):>11}")
    house = [q["answer"] for q in card["questions"] if not q["off_corpus"]]
    print(f"\nfirst answer with the house adapter:\n{house[0]}")


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _print_answer(question: str, a: dict) -> None:
    print(f"\nQ: {question}")
    if "error" in a:
        print(f"error: {a['error']['message']}")
        return
    print(f"A: {a['answer']}")
    for c in a["citations"]:
        quote = " ".join(c["quote"].split())[:160]
        print(f"   [{c['n']}] {Path(c['source']).name}, page {c['page']}: \"{quote}\"")
    print(f"   route={a['route']} grounded={a['grounded']} adapter={a['adapter']} "
          f"retrieve={a['timings']['retrieve_ms']:.0f} ms generate={a['timings']['generate_ms']:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
