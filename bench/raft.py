"""Does training with context (``hybrid tune --with-context``, RAFT-style) make /v1/query
answers cite and stay grounded more often than a plain style adapter trained on the same pairs?

    OMP_NUM_THREADS=1 .venv/bin/python bench/raft.py                 # ../shared/data, sizes below
    .venv/bin/python bench/raft.py --train 64 --test 30 --home /tmp/raft-bench

The SEC 10-Q QA set (``qa/sec10q_qna.csv``: questions, reference answers, gold documents over
``pdfs/sec10q/``) is split by question into training and test questions (seeded). The training
answers, with the set's own "(SOURCE: file)" notes removed (the product cites as [n]), become
prompt/completion examples. Two adapters are trained on exactly those examples with the same
hyperparameters: ``plain`` (question -> answer) and ``context`` (``--with-context`` the index
of the 20 PDFs). Each test question is then asked through ``Pipeline.ask`` (what /v1/query
runs) with each adapter, and this prints per adapter:

- model cites: share of generated answers with at least one valid ``[n]`` marker *before* the
  citation repair (``hybrid.citations`` attaches markers by word overlap afterwards, so the
  final figures measure grounding more than the model's own citing);
- sentences cited / answers cited: of the final answers, the share of sentences carrying a
  ``[n]``, and of answers with at least one citation;
- grounded: the ``grounded`` field; extractive: answers that fell back to quoting the passages
  (``hybrid.extractive``, when the generated text had no supported claim); generated refusal:
  the model said the documents do not cover it; refused: route "refuse" (retrieval gate,
  before generation, the same for both adapters);
- gold doc cited: answers citing one of the question's gold documents.

The index is built in ``HOME/index`` (ingest of the 1,037 pages takes minutes) unless it is
already there; the base model is taken from ``~/.hybrid/models`` when HOME has none.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

_SOURCE_NOTE = re.compile(r"\s*\(\s*SOURCES?(?:\(S\))?:[^)]*\)", re.IGNORECASE)
_SOURCE_LINE = re.compile(r"^\s*SOURCES?(?:\(S\))?:.*$", re.IGNORECASE | re.MULTILINE)
_MARKER = re.compile(r"\[(\d+)\]")


def load_questions(csv_path: Path) -> list[dict]:
    """Rows with a question, a cleaned answer and the gold documents' glob; one per question."""
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen, out = set(), []
    for row in rows:
        question = row["Question"].strip()
        answer = _SOURCE_LINE.sub("", _SOURCE_NOTE.sub("", row["Answer"])).strip()
        answer = re.sub(r"\n{3,}", "\n\n", answer)
        if question and answer and question not in seen:
            seen.add(question)
            out.append({"question": question, "answer": answer, "gold": row["Source Docs"].strip()})
    return out


def _home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    models, shared = path / "models", Path.home() / ".hybrid" / "models"
    if not models.exists() and shared.is_dir():
        models.symlink_to(shared)  # reuse the converted base model instead of converting again
    return path


def _metrics(records: list[dict], k: int) -> dict:
    answered = [r for r in records if r["route"] != "refuse"]
    n = max(1, len(answered))
    sentences = sum(r["sentences"] for r in answered)
    return {
        "questions": len(records),
        "refused": sum(r["route"] == "refuse" for r in records),
        "model_cites": sum(any(1 <= int(m) <= k for m in _MARKER.findall(r["raw"])) for r in answered) / n,
        "sentences_cited": sum(r["sentences_cited"] for r in answered) / max(1, sentences),
        "answers_cited": sum(bool(r["citations"]) for r in answered) / n,
        "grounded": sum(r["grounded"] for r in answered) / n,
        "extractive": sum(r["extractive"] for r in answered) / n,
        "generated_refusal": sum("not cover" in r["raw"].lower() for r in answered) / n,
        "gold_doc_cited": sum(r["gold_cited"] for r in answered) / n,
        "generate_ms": sum(r["generate_ms"] for r in answered) / n,
    }


def ask_all(pipe, ref: str, tests: list[dict]) -> list[dict]:
    """Ask every test question with adapter ``ref``; record the final answer and the raw generation."""
    from hybrid.extractive import LEAD
    from hybrid.text import sentence_spans

    generator = pipe.generator(pipe.adapters.resolve(ref))
    raw: list[str] = []
    generate = generator.generate

    def recording(*args, **kwargs):
        result = generate(*args, **kwargs)
        raw.append(result.text)
        return result

    generator.generate = recording  # the pipeline keeps this instance: ask() calls it
    records = []
    for test in tests:
        before = len(raw)
        answer = pipe.ask(test["question"], adapter=ref)
        spans = [answer.answer[a:b] for a, b in sentence_spans(answer.answer)]
        names = [Path(c.source).name for c in answer.citations]
        records.append({
            "question": test["question"],
            "route": answer.route,
            "answer": answer.answer,
            "raw": raw[-1] if len(raw) > before else "",
            "sentences": len(spans),
            "sentences_cited": sum(bool(_MARKER.search(s)) for s in spans),
            "citations": len(answer.citations),
            "grounded": answer.grounded,
            "extractive": answer.answer.startswith(LEAD),
            "gold_cited": any(fnmatch.fnmatch(name, test["gold"]) for name in names),
            "generate_ms": answer.timings.get("generate_ms", 0.0),
        })
    generator.generate = generate
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    parser.add_argument("--home", default="/tmp/raft-bench", help="HYBRID_HOME for the index and adapters")
    parser.add_argument("--train", type=int, default=64, help="training questions")
    parser.add_argument("--test", type=int, default=30, help="held-out test questions")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("-k", type=int, default=3, help="passages per question, in training and when asking")
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-answer-chars", type=int, default=1500, help="longest training answer kept")
    parser.add_argument("--base", action="store_true", help="also ask with the base model alone")
    parser.add_argument("--out", default=None, help="write every answer and the figures as JSON here")
    args = parser.parse_args()

    import torch

    from hybrid import Pipeline, load_settings

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    data, home = Path(args.data), _home(Path(args.home))
    questions = load_questions(data / "qa" / "sec10q_qna.csv")
    random.Random(args.seed).shuffle(questions)
    # Long answers (a few run to 20,000 characters) would be cut at max_length: left out of training.
    tests = questions[: args.test]
    train = [q for q in questions[args.test :] if len(q["answer"]) <= args.max_answer_chars][: args.train]
    examples = home / "raft-train.jsonl"
    examples.write_text("".join(json.dumps({"prompt": q["question"], "completion": q["answer"]}) + "\n" for q in train))
    settings = load_settings(home=home, k=args.k, max_new_tokens=args.max_new_tokens, adapter="none")
    pipe = Pipeline(settings)
    timings = {}
    if not (home / "index").is_dir():
        started = time.perf_counter()
        pipe.ingest([data / "pdfs" / "sec10q"], progress=lambda line: print(line, file=sys.stderr))
        timings["ingest_s"] = time.perf_counter() - started
    hyper = {"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
             "threads": threads, "seed": args.seed}
    refs, contexts = {}, {}
    for name, extra in (("plain", {}), ("context", {"with_context": home / "index"})):
        started = time.perf_counter()
        outcome = pipe.tune([examples], name=name, force=True, **hyper, **extra)
        timings[f"train_{name}_s"] = time.perf_counter() - started
        refs[name] = outcome.version.ref
        contexts[name] = outcome.version.meta.context
        print(f"trained {outcome.version.ref}: loss {outcome.result.train_loss:.3f}, "
              f"{outcome.result.steps} steps, {timings[f'train_{name}_s']:.0f} s", file=sys.stderr)
    if args.base:
        refs = {"base": "none", **refs}
    results, answers = {}, {}
    for label, ref in refs.items():
        started = time.perf_counter()
        answers[label] = ask_all(pipe, ref, tests)
        timings[f"ask_{label}_s"] = time.perf_counter() - started
        results[label] = _metrics(answers[label], args.k)
        print(f"asked {len(tests)} with {label} in {timings[f'ask_{label}_s']:.0f} s", file=sys.stderr)
    print(f"SEC 10-Q QA: {len(train)} training (answers <= {args.max_answer_chars} chars) / {len(tests)} test "
          f"questions (seed {args.seed}); k={args.k}; "
          f"{args.epochs} epoch(s), lr {args.learning_rate}, batch {args.batch_size}; "
          f"max_new_tokens {args.max_new_tokens}; {threads} thread(s)")
    print(f"pairing (context adapter): {contexts['context']['training']}")
    columns = ["refused", "model_cites", "sentences_cited", "answers_cited", "grounded", "extractive",
               "generated_refusal", "gold_doc_cited", "generate_ms"]
    print("| adapter | " + " | ".join(c.replace("_", " ") for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for label, figures in results.items():
        cells = [str(figures["refused"]) if c == "refused" else f"{figures[c]:.0f}" if c == "generate_ms"
                 else f"{figures[c]:.0%}" for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("timings: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results, "timings": timings,
                                              "context": contexts["context"], "answers": answers}, indent=1))
    pipe.close()


if __name__ == "__main__":
    main()
