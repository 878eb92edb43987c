"""Answer generation with a base model and an optional (merged) style adapter."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from tune.decode import greedy_tokens
from tune.encode import render
from tune.models import load_model

logger = logging.getLogger(__name__)
BUILD_TIMEOUT = 1800  # seconds for the fast path's build, far above the ~2 minutes it takes


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
    """Stops a streaming generation whose reader went away."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


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
        self._stop_ids = _stop_token_ids(tokenizer)
        self._fast: Any = None  # a tune.fastlm.SpeculativeDecoder once `start_fast` is done
        self.fast_status = "off"

    def start_fast(self, *, background: bool, cache_dir: Path) -> None:
        """Switch greedy replies to speculative decoding (`tune.fastlm`): the same tokens, faster.

        The int8 draft is compiled ahead of time into a package under ``cache_dir``, once per
        base model and adapter (about a minute on two cores), the float32 check into one per
        base model (about 40 s) and its matrix-product kernel once (about 10 s), in a
        subprocess (so this process never holds the compiler's ~2 GB); later starts only load
        them (~2 s). With ``background`` the build and load happen in a daemon thread while
        replies keep using the plain loop; the switch comes when it is done. ``fast_status``
        says where it stands: "off", "unsupported: ...", "building", "ready" or "failed: ...".
        A model the compact decoder does not cover, or a build that fails (no C++ compiler),
        keeps the plain loop.
        """
        from tune import fastlm

        reason = fastlm.unsupported(self.model)
        if reason is not None:
            self.fast_status = f"unsupported: {reason}"
            logger.info("fast decoding off: %s", reason)
            return
        if not fastlm.compiler_available():
            self.fast_status = "unsupported: no C++ compiler (g++) to build the draft"
            logger.info("fast decoding off: no C++ compiler")
            return
        self.fast_status = "building"
        if background:
            threading.Thread(target=self._build_fast, args=(Path(cache_dir),), name="tune-fast-decode", daemon=True).start()
        else:
            self._build_fast(Path(cache_dir))

    def _build_fast(self, cache_dir: Path) -> None:
        from tune import fastlm

        started = time.perf_counter()
        try:
            draft = cache_dir / fastlm.package_name(self.model_dir, self.adapter_dir)
            check = cache_dir / fastlm.check_name(self.model_dir)  # shared by the base model's adapters
            kernels = cache_dir / fastlm.kernels_name()  # shared by every model
            builds = (None if draft.is_file() else draft, None if check.is_file() else check)
            if any(builds) or not kernels.is_file():
                logger.info("building the fast decoding packages (about two minutes): %s", [str(p) for p in builds if p])
                _build_package(self.model_dir, self.adapter_dir, *builds, kernels)

            def load() -> tuple[Any, Any]:
                fastlm.load_kernels(kernels)  # before the check, whose graph calls them
                return fastlm.load_package(draft), fastlm.load_package(check)

            try:
                draft_package, check_package = load()
            except Exception:  # a damaged file from an earlier run: build everything again, once
                if all(builds):
                    raise
                for path in (draft, check, kernels):
                    path.unlink(missing_ok=True)
                _build_package(self.model_dir, self.adapter_dir, draft, check, kernels)
                draft_package, check_package = load()
            decoder = fastlm.SpeculativeDecoder(self.model, draft=draft_package, check=check_package)
            # One short reply proves the package runs here before any user's reply depends on it.
            inputs = self._inputs([{"role": "user", "content": "Say hello to the team, in one short sentence."}])
            list(decoder.tokens(inputs["input_ids"], max_new_tokens=2 * decoder.draft_tokens + 2, stop_ids=[]))
        except Exception as exc:  # noqa: BLE001 - any build failure only costs speed
            self.fast_status = f"failed: {type(exc).__name__}: {exc}"[:300]
            logger.warning("fast decoding off, its build failed: %s", self.fast_status)
            return
        with self._lock:
            self._fast = decoder
        self.fast_status = "ready"
        fastlm.release_free_memory()
        logger.info("fast decoding ready after %.0f s", time.perf_counter() - started)

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

    def generate(
        self,
        messages: Sequence[dict],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        repetition_penalty: float = 1.1,
    ) -> GenerationResult:
        """Reply to a conversation; greedy when ``temperature`` is 0, stops at the end-of-turn token.

        Greedy replies come from `tune.decode.greedy_tokens` (a KV-cached loop without
        `generate`'s per-token overhead; the same tokens); sampling goes through `generate`.

        Args:
            messages: ``{"role", "content"}`` dicts; the reply continues as the assistant.
            max_new_tokens: the longest reply, in tokens.
            temperature: 0 for deterministic greedy decoding, above 0 to sample.
            repetition_penalty: >1 discourages the loops small models fall into.
        """
        inputs = self._inputs(messages)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        started = time.perf_counter()
        if temperature == 0:
            completion, first = [], 0.0
            with self._lock, torch.inference_mode():
                for token, seconds in self._greedy(inputs, max_new_tokens, repetition_penalty):
                    completion.append(token)
                    first = first or seconds
        else:  # sampling keeps generate(), whose top-k/top-p defaults the model's config may set
            with self._lock, torch.inference_mode():
                output = self.model.generate(**inputs, **self._options(max_new_tokens, temperature, repetition_penalty))
            completion, first = _up_to_stop(output[0, prompt_tokens:].tolist(), self._stop_ids), 0.0
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
    ) -> Iterator[str]:
        """Like `generate`, yielding pieces of text as they are produced.

        Closing the iterator early stops the generation at the next token.
        """
        if temperature == 0:
            yield from self._stream_greedy(messages, max_new_tokens, repetition_penalty)
            return
        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        cancelled = threading.Event()
        options = self._options(max_new_tokens, temperature, repetition_penalty)
        options["stopping_criteria"] = StoppingCriteriaList([_Cancelled(cancelled)])
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**inputs, **options, streamer=streamer)
            except BaseException as exc:  # re-raised in the reader's thread below
                failure.append(exc)
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, name="tune-stream", daemon=True)
            worker.start()
            try:
                first = True
                for piece in streamer:
                    if first:
                        piece, first = piece.lstrip(), not piece.strip()
                    if piece:
                        yield piece
            finally:
                cancelled.set()
                worker.join()
        if failure:
            raise failure[0]

    def _greedy(
        self, inputs: dict[str, torch.Tensor], max_new_tokens: int, repetition_penalty: float
    ) -> Iterator[tuple[int, float]]:
        options = {"max_new_tokens": max_new_tokens, "stop_ids": self._stop_ids, "repetition_penalty": repetition_penalty}
        fast = self._fast
        if fast is None:
            return greedy_tokens(self.model, inputs["input_ids"], **options)
        return self._fast_tokens(fast, inputs["input_ids"], options)

    def _fast_tokens(self, fast: Any, input_ids: torch.Tensor, options: dict[str, Any]) -> Iterator[tuple[int, float]]:
        # A failure of the compiled path before the first token falls back to the plain loop
        # (and turns the fast path off); after it, the reply cannot be restarted unseen.
        produced = 0
        try:
            for item in fast.tokens(input_ids, **options):
                produced += 1
                yield item
        except Exception as exc:
            if produced:
                raise
            self._fast = None
            self.fast_status = f"failed: {type(exc).__name__}: {exc}"[:300]
            logger.warning("fast decoding off after a failure: %s", self.fast_status)
            yield from greedy_tokens(self.model, input_ids, **options)

    def _stream_greedy(self, messages: Sequence[dict], max_new_tokens: int, repetition_penalty: float) -> Iterator[str]:
        # Decode the whole reply so far after each token and yield what it added, holding back
        # a tail that ends in a partial UTF-8 character (U+FFFD) until the next token completes
        # it; the pieces then join to exactly the text `generate` returns, before stripping.
        inputs = self._inputs(messages)
        tokens: list[int] = []
        sent = ""
        with self._lock, torch.inference_mode():
            for token, _ in self._greedy(inputs, max_new_tokens, repetition_penalty):
                tokens.append(token)
                text = self.tokenizer.decode(tokens, skip_special_tokens=True).lstrip()
                if text.endswith("\ufffd") or len(text) <= len(sent):
                    continue
                piece, sent = text[len(sent) :], text
                yield piece
        if tokens and len(text) > len(sent):  # a reply that ends mid-character
            yield text[len(sent) :]

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


def _build_package(
    model_dir: Path, adapter_dir: Path | None, draft: Path | None, check: Path | None, kernels: Path
) -> None:
    # In a subprocess: the compiler's memory is returned to the system when it exits.
    names = [str(model_dir), str(adapter_dir or "-"), str(draft or "-"), str(check or "-"), str(kernels)]
    done = subprocess.run([sys.executable, "-m", "tune.fastlm", *names], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    if done.returncode != 0 or not all(path.is_file() for path in (draft, check, kernels) if path):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"the fast decoding build exited with {done.returncode}: {' / '.join(tail)}")


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


def _up_to_stop(tokens: list[int], stop_ids: list[int]) -> list[int]:
    # Count the stop token (the model did produce it) but nothing after it (padding).
    for index, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[: index + 1]
    return tokens
