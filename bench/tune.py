"""Training speed: our LoRA loop against a naive PEFT loop, on the same examples, in one run.

    .venv/bin/python bench/tune.py            # ../shared/data/style/cochrane_plain_language_val.jsonl
    .venv/bin/python bench/tune.py FILE --steps 12 --batch-size 8

The naive baseline is the loop most PEFT tutorials write: SmolLM2-135M in float32, LoRA r=8 on
every linear layer, examples in random order, each batch padded to its longest example, loss
on every token. Ours is `tune.train_adapter` with the same rank, targets, batch size and
examples. Both count *effective* tokens per second: tokens that are not padding, over the
training steps only (model loading and the first, warm-up step excluded). Each runs in a fresh
process, one after the other, with an empty torch.compile cache. Ours compiles its layers
(``--compile on``; ``tune.compile = "auto"`` does so for runs of 40 steps or more): that cost
falls in the first step, so the figures with the first step included are printed as well.
Timings on a shared machine vary; read the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))


def _examples(path: str, count: int, seed: int, columns: tuple[str | None, str | None] = (None, None)):
    import tune

    examples, problems = tune.read_examples(path, input_column=columns[0], output_column=columns[1])
    if not examples:
        raise SystemExit(f"no usable examples in {path}: {problems[:3]}")
    random.Random(seed).shuffle(examples)
    return examples[:count]


def _base_model() -> Path:
    import tune

    home = Path(os.environ.get("HYBRID_HOME", Path.home() / ".hybrid"))
    return tune.resolve_base_model("default", home / "models")


def run_naive(args: argparse.Namespace) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from tune.encode import encode_example
    from tune.models import load_model

    torch.manual_seed(args.seed)
    model, tokenizer = load_model(_base_model(), dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    examples = _examples(args.examples, args.steps * args.batch_size, args.seed, (args.input_column, args.output_column))
    rows = [encode_example(tokenizer, e.messages, args.max_length).input_ids for e in examples]
    tokens, seconds = 0, 0.0
    for step in range(args.steps):
        batch = rows[step * args.batch_size : (step + 1) * args.batch_size]
        width = max(len(r) for r in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        started = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up the allocator and kernels
            seconds += time.perf_counter() - started
            tokens += int(mask.sum())
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def run_ours(args: argparse.Namespace) -> dict:
    import tune

    examples = _examples(args.examples, args.steps * args.batch_size, args.seed, (args.input_column, args.output_column))
    steps: list[dict] = []
    config = tune.TuneConfig(
        rank=8, alpha=16, batch_size=args.batch_size, max_steps=args.steps, max_length=args.max_length,
        seed=args.seed, dtype=args.dtype, compile=args.compile,
        **({"micro_batch_tokens": args.micro_batch_tokens} if args.micro_batch_tokens else {}),
    )
    with tempfile.TemporaryDirectory() as out:
        result = tune.train_adapter(
            examples, _base_model(), out, config,
            progress=lambda info: steps.append(info) if "step" in info else None,
        )
    timed = steps[1:]  # the first step warms up, as in the baseline
    tokens = sum(s["tokens"] for s in timed)
    seconds = sum(s["seconds"] for s in timed)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "train_loss": result.train_loss,
            "first_step_seconds": steps[0]["seconds"], "first_step_tokens": steps[0]["tokens"]}


def _child(which: str, argv: list[str]) -> dict:
    # An empty compile cache for each child, as on a fresh machine: compilation is paid in full.
    with tempfile.TemporaryDirectory() as cache:
        result = subprocess.run(
            [sys.executable, __file__, *argv, "--child", which],
            capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TORCHINDUCTOR_CACHE_DIR": cache},
        )
    if result.returncode != 0:
        raise SystemExit(f"{which} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("examples", nargs="?", default="../shared/data/style/cochrane_plain_language_val.jsonl")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed (plus one warm-up)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--dtype", default="auto", help="ours: tune.dtype (auto, float32, bfloat16)")
    parser.add_argument("--compile", default="on", help="ours: tune.compile (auto, on, off) [default: on]")
    parser.add_argument("--micro-batch-tokens", type=int, default=None, help="ours: tune.micro_batch_tokens")
    parser.add_argument("--input-column", default=None, help="CSV: the input column")
    parser.add_argument("--output-column", default=None, help="CSV: the output column")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=["naive", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps += 1  # the warm-up step
    if args.child:
        print(json.dumps(run_naive(args) if args.child == "naive" else run_ours(args)))
        return 0
    argv = [a for a in sys.argv[1:]]
    results = {which: _child(which, argv) for which in ("naive", "ours")}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for which, r in results.items():
        print(f"{which:>6}: {r['tokens']} effective tokens in {r['seconds']:.1f} s = {r['tokens_per_s']:.0f} tokens/s")
    naive, ours = results["naive"], results["ours"]
    print(f"speed-up (ours / naive): {ours['tokens_per_s'] / naive['tokens_per_s']:.2f}x")
    # The first step (excluded above) carries our one-off compilation: count it in, too.
    extra = ours["first_step_seconds"] - ours["first_step_tokens"] / ours["tokens_per_s"]
    whole = (ours["tokens"] + ours["first_step_tokens"]) / (ours["seconds"] + ours["first_step_seconds"])
    print(f"ours, first step included (compilation {extra:.0f} s): {whole:.0f} tokens/s = "
          f"{whole / naive['tokens_per_s']:.2f}x over these {args.steps} steps")
    saved_per_token = 1 / naive["tokens_per_s"] - 1 / ours["tokens_per_s"]
    if extra > 0 and saved_per_token > 0:
        print(f"compilation included, ours is ahead of the naive loop after {extra / saved_per_token:,.0f} tokens "
              f"({extra / saved_per_token / (ours['tokens'] / (args.steps - 1)):.0f} steps of this size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
