"""Example lengths in the base model's tokens, from its tokenizer alone (no weights loaded).

``hybrid tune --check`` measures every example the way training will see it: rendered with
the chat template, then tokenised. Loading a tokenizer takes a fraction of a second; loading
the weights would take many seconds and gigabytes, so the check never does. Counting needs no
torch; only `load_tokenizer` imports transformers (and through it torch), when called.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tune.encode import render
from tune.errors import ModelNotFoundError

# Without the tokenizer, lengths are estimated from characters. English averages about 4.5
# characters per token with SmolLM2's tokenizer (measured on the style datasets in
# docs/how-to/retrain.md); 4 errs towards long, so an estimate rarely misses an over-long example.
CHARS_PER_TOKEN = 4
BATCH = 256  # conversations tokenised per call: one call amortises the Rust tokenizer's overhead
_TOKENIZER_CACHE = "tokenizers"  # under the models directory: the embedded model's tokenizer only


def load_tokenizer(spec: str | Path | None, cache_dir: str | Path, *, allow_download: bool = False) -> Any:
    """The tokenizer of base model ``spec``, without loading the model's weights.

    Args:
        spec: as for `resolve_base_model`: None or the default name (the embedded SmolLM2), a
            model directory, or a Hugging Face id in the local cache.
        cache_dir: the models directory; the embedded model's tokenizer is kept there after its
            first extraction from the GGUF file (a few seconds, once).
        allow_download: let a Hugging Face id's tokenizer files be fetched.

    Raises:
        ModelNotFoundError: the model or its tokenizer is not available on this machine.
    """
    from transformers import AutoTokenizer

    from tune.models import _HF_ID, DEFAULT_ALIASES, resolve_base_model

    text = str(spec or "default").strip()
    cache_dir = Path(cache_dir)
    try:
        if text.lower() in DEFAULT_ALIASES:
            return AutoTokenizer.from_pretrained(_embedded_tokenizer_dir(cache_dir), local_files_only=True)
        path = Path(text).expanduser()
        if path.is_dir():
            return AutoTokenizer.from_pretrained(path, local_files_only=True)
        if not _HF_ID.match(text):
            resolve_base_model(text, cache_dir)  # raises the usual "neither a directory nor an id"
        # A Hub id: its tokenizer files only, never the weights.
        return AutoTokenizer.from_pretrained(text, local_files_only=not allow_download)
    except ModelNotFoundError:
        raise
    except Exception as exc:  # transformers raises many types: missing files, offline, bad GGUF
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelNotFoundError(f"cannot load the tokenizer of base model {text!r}: {reason}") from exc


def _embedded_tokenizer_dir(cache_dir: Path) -> Path:
    """A directory with the embedded model's tokenizer files: its converted copy, or our own."""
    from tune.models import DEFAULT_BASE_MODEL, MARKER_FILE, embedded_gguf

    converted = cache_dir / DEFAULT_BASE_MODEL
    if (converted / MARKER_FILE).is_file():
        return converted
    gguf = embedded_gguf()
    target = cache_dir / _TOKENIZER_CACHE / DEFAULT_BASE_MODEL
    source = {"gguf": str(gguf), "size": gguf.stat().st_size}
    try:
        if json.loads((target / MARKER_FILE).read_text()) == source:
            return target
    except (OSError, ValueError):
        pass
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed into place, so a concurrent check never reads half a tokenizer.
    staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_BASE_MODEL}-", dir=target.parent))
    try:
        tokenizer.save_pretrained(staging)
        (staging / MARKER_FILE).write_text(json.dumps(source) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / MARKER_FILE).is_file():
            raise
    return target


def count_tokens(tokenizer: Any, conversations: Sequence[Sequence[dict]]) -> list[int]:
    """Length of each conversation after the chat template, in tokens (as training counts them).

    Raises:
        TuneError: the tokenizer has no chat template.
    """
    lengths: list[int] = []
    for start in range(0, len(conversations), BATCH):
        texts = [render(tokenizer, messages) for messages in conversations[start : start + BATCH]]
        lengths += [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return lengths


def estimate_tokens(conversations: Sequence[Sequence[dict]]) -> list[int]:
    """Lengths estimated from characters (see `CHARS_PER_TOKEN`), with a few tokens per message
    for the template's role markers."""
    return [sum(len(m["content"]) // CHARS_PER_TOKEN + 4 for m in messages) for messages in conversations]
