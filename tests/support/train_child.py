"""A real training run in a process of its own: killed with SIGKILL by the resume test, or
launched twice by torchrun for the data-parallel test.

    python -m tests.support.train_child MODEL DATA OUT CHECKPOINT [STOP_AFTER MARKER]

Trains `CONFIG` on the JSONL examples in DATA (the first `EVAL_EXAMPLES` also held out) with a
checkpoint after every step. ``{rank}`` in OUT and CHECKPOINT becomes the process's rank, so a
test sees which processes wrote files. With STOP_AFTER, writes MARKER after that step and sleeps
until killed (the test waits for MARKER instead of guessing a delay). Prints the `TrainResult`
as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tune import TuneConfig, distributed, read_examples, train_adapter

# 13 to 16 examples: 4 steps an epoch, 12 in all. float32, so runs split differently agree closely.
CONFIG = TuneConfig(batch_size=4, epochs=3, learning_rate=1e-2, dtype="float32", seed=3)
EVAL_EXAMPLES = 3
_HOLD_SECONDS = 120  # far longer than any test waits; the test kills us well before


def main(model: str, data: str, out: str, checkpoint: str, stop_after: int | None, marker: Path | None) -> None:
    rank = os.environ.get("RANK", "0")

    def progress(info: dict) -> None:
        if stop_after is not None and info.get("step") == stop_after:
            marker.write_text("here")
            time.sleep(_HOLD_SECONDS)

    examples, _ = read_examples(Path(data))
    result = train_adapter(
        examples, model, out.format(rank=rank), CONFIG, eval_examples=examples[:EVAL_EXAMPLES], progress=progress,
        checkpoint_dir=checkpoint.format(rank=rank), checkpoint_seconds=0,
    )
    # One write of under 4 KiB: atomic on a pipe, so two processes' lines never interleave.
    os.write(1, (json.dumps({"rank": int(rank), **asdict(result)}) + "\n").encode())
    distributed.shutdown()


def write_examples(path: Path, count: int) -> Path:
    """``count`` JSONL examples whose replies differ in length, so each batch shows in the losses."""
    reply = "Dear customer, thank you for your question."
    records = [{"messages": [{"role": "user", "content": f"Question {i}: where is my parcel?"},
                             {"role": "assistant", "content": reply + " Please check your account." * (i % 5)}]}
               for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


if __name__ == "__main__":
    model, data, out, checkpoint, *stop = sys.argv[1:]
    main(model, data, out, checkpoint, int(stop[0]) if stop else None, Path(stop[1]) if stop else None)
