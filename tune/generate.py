"""Answer generation with a base model and an optional (merged) style adapter."""

from __future__ import annotations

import collections.abc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from tune.decode import greedy_tokens
from tune.encode import render
from tune.fastpath import FastPath
from tune.models import load_model

logger = logging.getLogger(__name__)
# How often a reply waiting for the model looks whether it was cancelled meanwhile, in seconds.
LOCK_POLL_S = 0.1
_END = object()  # ends a stream's queue of pieces
_Tokens = collections.abc.Generator[tuple[int, float], None, None]  # (token id, seconds since the last)


@dataclass(frozen=True)
class GenerationResult:
    """One generated reply.

    Attributes:
        text: the reply, special tokens removed, stripped.
        prompt_tokens: tokens of the templated conversation fed to the model.
        completion_tokens: tokens generated, including the end-of-turn token when reached.
        seconds: wall time of the generation.
        first_token_seconds: wall time to the first new token (the prefill); 0.0 when sampling.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    first_token_seconds: float = 0.0


class _Cancelled(StoppingCriteria):
    """Stops a sampled generation once ``stop()`` is true (its reader went away)."""

    def __init__(self, stop: Callable[[], bool]) -> None:
        self.stop = stop

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.stop(), dtype=torch.bool, device=input_ids.device)


class _TokenSink(BaseStreamer):
    """Hands each token `generate` samples to ``emit``, up to and including the first stop
    token (the model did produce it), nothing after it; the prompt, which `generate` passes
    first, is skipped."""

    def __init__(self, emit: Callable[[int], None], stop_ids: Sequence[int]) -> None:
        self.emit = emit
        self.stop_ids = set(stop_ids)
        self.prompt_seen = False
        self.stopped = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if self.stopped:
                return
            self.emit(token)
            self.stopped = token in self.stop_ids

    def end(self) -> None:
        pass


class Generator:
    """A loaded model that turns chat messages into a reply; one generation at a time.

    Attributes:
        model_dir: the base model directory.
        adapter_dir: the adapter merged into it, or None for the base model alone.
    """

    def __init__(self, model: Any, tokenizer: Any, model_dir: Path, adapter_dir: Path | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.adapter_dir = adapter_dir
        # generate() on one model from several threads interleaves its caches; serialise instead.
        self._lock = threading.Lock()
        self._busy_since: float | None = None  # time.monotonic() when the reply now made took the model
        self._progress_at = 0.0  # time.monotonic() of that reply's latest token
        self._closed = threading.Event()  # set by close(): every reply stops
        self._stop_ids = _stop_token_ids(tokenizer)
        # Speculative decoding of greedy replies (tune.fastpath): off until `fast.start`.
        self.fast = FastPath(model, model_dir, adapter_dir, self._probe)

    @classmethod
    def load(
        cls, model_dir: str | Path, adapter_dir: str | Path | None = None, *, dtype: torch.dtype = torch.float32
    ) -> Generator:
        """Load a base model and merge an adapter into it (see `load_model` for errors)."""
        model, tokenizer = load_model(model_dir, adapter_dir=adapter_dir, merge=True, dtype=dtype)
        return cls(model, tokenizer, Path(model_dir), Path(adapter_dir) if adapter_dir is not None else None)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` without any template or special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        """Stop the replies in progress at their next token, and every later one before it
        starts (a server shutting down); the generator is not to be used after this."""
        self._closed.set()

    def stalled_seconds(self) -> float:
        """Seconds the reply being generated has gone without a new token; 0.0 when none is.

        The prefill counts as one step, so a long prompt on a slow machine shows here as a few
        seconds without progress. A server reports itself degraded past a bound (``/healthz``).
        """
        since = self._busy_since
        if since is None:
            return 0.0
        return max(0.0, time.monotonic() - max(since, self._progress_at))

    def generate(
        self,
        messages: Sequence[dict],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        repetition_penalty: float = 1.1,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Reply to a conversation; greedy when ``temperature`` is 0, stops at the end-of-turn token.

        Greedy replies come from `tune.decode.greedy_tokens` (a KV-cached loop without
        `generate`'s per-token overhead; the same tokens); sampling goes through `generate`.

        Args:
            messages: ``{"role", "content"}`` dicts; the reply continues as the assistant.
            max_new_tokens: the longest reply, in tokens.
            temperature: 0 for deterministic greedy decoding, above 0 to sample.
            repetition_penalty: >1 discourages the loops small models fall into.
            cancel: once set (by another thread), generation stops at the next token and the
                reply is what was made so far; set before the model came free, nothing is made.
        """
        inputs = self._inputs(messages)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        started = time.perf_counter()
        completion: list[int] = []
        stop = cancel.is_set if cancel is not None else _never
        first = self._produce(inputs, max_new_tokens, temperature, repetition_penalty, stop, completion.append)
        seconds = time.perf_counter() - started
        text = self.tokenizer.decode(completion, skip_special_tokens=True).strip()
        return GenerationResult(text, prompt_tokens, len(completion), seconds, first)

    def stream(
        self,
        messages: Sequence[dict],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        repetition_penalty: float = 1.1,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Like `generate`, yielding pieces of text as they are produced.

        The reply is made in a worker thread that holds the model and hands pieces over a queue;
        the reader never holds the model itself. So a reader that stops reading (a client gone
        mid-stream whose iterator is never closed) cannot keep the model from other requests:
        the worker ends at ``max_new_tokens`` at the latest. Closing the iterator, or setting
        ``cancel``, stops the worker at the next token.

        The pieces join to exactly the text `generate` returns, before stripping: after each
        token the whole reply so far is decoded and what it added is sent, holding back a tail
        that ends in a partial UTF-8 character (U+FFFD) until the next token completes it.
        """
        inputs = self._inputs(messages)
        closed = threading.Event()  # the reader stopped reading

        def stop() -> bool:
            return closed.is_set() or (cancel is not None and cancel.is_set())

        pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        tokens: list[int] = []
        sent = ""

        def emit(token: int) -> None:
            nonlocal sent
            tokens.append(token)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).lstrip()
            if not text.endswith("\ufffd") and len(text) > len(sent):
                pieces.put(text[len(sent) :])
                sent = text

        def run() -> None:
            try:
                self._produce(inputs, max_new_tokens, temperature, repetition_penalty, stop, emit)
                text = self.tokenizer.decode(tokens, skip_special_tokens=True).lstrip()
                if len(text) > len(sent) and not stop():  # a reply that ends mid-character
                    pieces.put(text[len(sent) :])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the reader's thread
                pieces.put(exc)
            finally:
                pieces.put(_END)

        threading.Thread(target=run, name="tune-stream", daemon=True).start()
        try:
            while (item := pieces.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            closed.set()  # the worker stops at its next token; nothing waits for it here

    def _produce(
        self,
        inputs: dict[str, torch.Tensor],
        max_new_tokens: int,
        temperature: float,
        repetition_penalty: float,
        cancelled: Callable[[], bool],
        emit: Callable[[int], None],
    ) -> float:
        """Make one reply, calling ``emit`` with each token id; returns the prefill's seconds.

        The model is held for the whole reply, inside this one call: never across a ``yield``
        to code outside, so no reader can keep it. Waiting for the model and decoding both end
        once ``cancelled()`` is true, or the generator is closed.
        """

        def stop() -> bool:
            return self._closed.is_set() or cancelled()

        def step(token: int) -> None:
            self._progress_at = time.monotonic()
            emit(token)

        if not self._acquire(stop):
            return 0.0
        first = 0.0
        try:
            self._busy_since = self._progress_at = time.monotonic()
            with torch.inference_mode():
                if temperature == 0:
                    tokens = self._greedy(inputs, max_new_tokens, repetition_penalty)
                    try:
                        for token, seconds in tokens:
                            first = first or seconds
                            step(token)
                            if stop():
                                break
                    finally:
                        tokens.close()
                else:  # sampling keeps generate(), whose top-k/top-p defaults the model's config may set
                    options = self._options(max_new_tokens, temperature, repetition_penalty)
                    options["stopping_criteria"] = StoppingCriteriaList([_Cancelled(stop)])
                    self.model.generate(**inputs, **options, streamer=_TokenSink(step, self._stop_ids))
        finally:
            self._busy_since = None
            self._lock.release()
        return first

    def _acquire(self, stop: Callable[[], bool]) -> bool:
        """Take the model, or give up (False) once ``stop()`` is true while waiting for it."""
        while not self._lock.acquire(timeout=LOCK_POLL_S):
            if stop():
                return False
        if stop():
            self._lock.release()
            return False
        return True

    def _greedy(
        self, inputs: dict[str, torch.Tensor], max_new_tokens: int, repetition_penalty: float
    ) -> _Tokens:
        options = {"max_new_tokens": max_new_tokens, "stop_ids": self._stop_ids, "repetition_penalty": repetition_penalty}
        input_ids = inputs["input_ids"]
        return self.fast.tokens(input_ids, options, lambda: greedy_tokens(self.model, input_ids, **options))

    def _probe(self) -> torch.Tensor:
        """A short prompt that proves a fast decoder runs before any user's reply depends on it."""
        return self._inputs([{"role": "user", "content": "Say hello to the team, in one short sentence."}])["input_ids"]

    def _inputs(self, messages: Sequence[dict]) -> dict[str, torch.Tensor]:
        text = render(self.tokenizer, messages, add_generation_prompt=True)
        encoded = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _options(self, max_new_tokens: int, temperature: float, repetition_penalty: float) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "repetition_penalty": repetition_penalty,
            "eos_token_id": self._stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            options["temperature"] = temperature
        else:  # unset sampling knobs a model's generation_config may carry, so greedy is greedy
            options.update(temperature=None, top_p=None, top_k=None)
        return options


def _stop_token_ids(tokenizer: Any) -> list[int]:
    # Chat models end a turn with their template's marker (<|im_end|>), which may differ from
    # eos_token (Llama 3: <|eot_id|> vs <|end_of_text|>); stop at either.
    ids = []
    for token in (tokenizer.eos_token, "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        if token is None:
            continue
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


def _never() -> bool:
    return False
