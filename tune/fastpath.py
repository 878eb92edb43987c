"""The fast path's lifecycle for one loaded model: build, load, warm up, status, fall back.

``tune.fastlm`` is the speculative decoder itself; this module decides whether a model gets
one and keeps track of it. ``prepare`` is the one entry: it returns a working decoder, or the
``FastStatus`` that says why there is none. ``FastPath`` runs it (in the background for a
server) and is what a ``tune.Generator`` asks, per reply, for the decoder to use; a decoder
that fails before its first token turns the path off, and the reply falls back to the plain
loop.

The packages are compiled ahead of time under a cache folder, once per base model and adapter
(the int8 draft, about a minute on two cores), once per base model (the float32 check, about
40 s) and once per machine (the matrix-product kernel, about 10 s), in a subprocess, so that
the serving process never holds the compiler's ~2 GB; later starts only load them (~2 s).
"""

from __future__ import annotations

import enum
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tune.toolchain import compiler_available

logger = logging.getLogger(__name__)
BUILD_TIMEOUT = 1800  # seconds for the build, far above the ~2 minutes it takes
REASON_CHARS = 300  # a failure's message is cut to this in the status
Tokens = Iterator[tuple[int, float]]  # (token id, seconds since the last)


class FastState(enum.Enum):
    OFF = "off"  # not asked for (the fast_decode setting)
    UNSUPPORTED = "unsupported"  # this model or machine cannot have it; the reason says why
    BUILDING = "building"  # replies use the plain loop until it is ready
    READY = "ready"
    FAILED = "failed"  # the build or a reply failed; the plain loop stays


@dataclass(frozen=True)
class FastStatus:
    """Where the fast path stands, and why when it is unsupported or failed."""

    state: FastState
    reason: str = ""

    def __str__(self) -> str:
        """``"ready"``, or ``"unsupported: no C++ compiler ..."`` (as ``/healthz`` shows it)."""
        return f"{self.state.value}: {self.reason}" if self.reason else self.state.value

    @classmethod
    def failure(cls, exc: BaseException) -> FastStatus:
        return cls(FastState.FAILED, f"{type(exc).__name__}: {exc}"[:REASON_CHARS])


def prepare(
    model: Any, model_dir: Path, adapter_dir: Path | None, cache_dir: Path, probe: torch.Tensor
) -> Any | FastStatus:
    """A ``tune.fastlm.SpeculativeDecoder`` for ``model``, proven on ``probe`` (prompt token ids),
    or the status that says why there is none: an unsupported model, no compiler, a failed build."""
    from tune import fastlm

    if (unsupported := why_not(model)) is not None:
        return unsupported
    try:
        draft = cache_dir / fastlm.package_name(model_dir, adapter_dir)
        check = cache_dir / fastlm.check_name(model_dir)  # shared by the base model's adapters
        kernels = cache_dir / fastlm.kernels_name()  # shared by every model
        builds = (None if draft.is_file() else draft, None if check.is_file() else check)
        if any(builds) or not kernels.is_file():
            logger.info("building the fast decoding packages (about two minutes): %s", [str(p) for p in builds if p])
            _build(model_dir, adapter_dir, *builds, kernels)

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
            _build(model_dir, adapter_dir, draft, check, kernels)
            draft_package, check_package = load()
        decoder = fastlm.SpeculativeDecoder(model, draft=draft_package, check=check_package)
        # One short reply proves the package runs here before any user's reply depends on it.
        list(decoder.tokens(probe, max_new_tokens=2 * decoder.draft_tokens + 2, stop_ids=[]))
    except Exception as exc:  # noqa: BLE001 - any build failure only costs speed
        return FastStatus.failure(exc)
    fastlm.release_free_memory()
    return decoder


def why_not(model: Any) -> FastStatus | None:
    """``UNSUPPORTED`` with the reason when ``model`` or this machine cannot have the fast path
    (a layout the compact decoder does not cover, no C++ compiler); None when it can. Cheap."""
    from tune import fastlm

    reason = fastlm.unsupported(model)
    if reason is not None:
        return FastStatus(FastState.UNSUPPORTED, reason)
    if not compiler_available():
        return FastStatus(FastState.UNSUPPORTED, "no C++ compiler (g++) to build the draft")
    return None


class FastPath:
    """Speculative decoding for one generator: off until ``start``, then building, then ready
    (or unsupported, or failed, with the reason). Thread-safe."""

    def __init__(self, model: Any, model_dir: Path, adapter_dir: Path | None, probe: Callable[[], torch.Tensor]) -> None:
        self._model, self._model_dir, self._adapter_dir, self._probe = model, model_dir, adapter_dir, probe
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._status = FastStatus(FastState.OFF)

    @property
    def status(self) -> FastStatus:
        return self._status

    @property
    def decoder(self) -> Any:
        """The ``tune.fastlm.SpeculativeDecoder`` replies use now; None while there is none."""
        return self._decoder

    def start(self, *, background: bool, cache_dir: Path) -> None:
        """Prepare the decoder (``prepare``); with ``background`` in a daemon thread while
        replies keep using the plain loop, the switch coming when it is ready."""
        with self._lock:
            if self._status.state is not FastState.OFF:
                return  # started once
            self._status = why_not(self._model) or FastStatus(FastState.BUILDING)
        if self._status.state is FastState.UNSUPPORTED:
            logger.info("fast decoding off: %s", self._status)
            return
        if background:
            threading.Thread(target=self._prepare, args=(Path(cache_dir),), name="tune-fast-decode", daemon=True).start()
        else:
            self._prepare(Path(cache_dir))

    def _prepare(self, cache_dir: Path) -> None:
        started = time.perf_counter()
        found = prepare(self._model, self._model_dir, self._adapter_dir, cache_dir, self._probe())
        with self._lock:
            if isinstance(found, FastStatus):
                self._status = found
            else:
                self._decoder, self._status = found, FastStatus(FastState.READY)
        if isinstance(found, FastStatus):
            log = logger.info if found.state is FastState.UNSUPPORTED else logger.warning
            log("fast decoding off: %s", found)
        else:
            logger.info("fast decoding ready after %.0f s", time.perf_counter() - started)

    def tokens(self, input_ids: torch.Tensor, options: dict[str, Any], plain: Callable[[], Tokens]) -> Tokens:
        """A reply's tokens from the decoder when it is ready, else from ``plain()``.

        A failure of the decoder before the first token turns the path off (``FAILED``) and
        falls back to ``plain()``; after it, the reply cannot be restarted unseen and the error
        is raised.
        """
        decoder = self._decoder
        if decoder is None:
            yield from plain()
            return
        produced = 0
        try:
            for item in decoder.tokens(input_ids, **options):
                produced += 1
                yield item
        except Exception as exc:
            if produced:
                raise
            with self._lock:
                self._decoder, self._status = None, FastStatus.failure(exc)
            logger.warning("fast decoding off after a failure: %s", self._status)
            yield from plain()

    def use(self, decoder: Any) -> None:
        """Decode with ``decoder`` from now on (a test's, or one ``prepare`` made elsewhere)."""
        with self._lock:
            self._decoder, self._status = decoder, FastStatus(FastState.READY)


def _build(model_dir: Path, adapter_dir: Path | None, draft: Path | None, check: Path | None, kernels: Path) -> None:
    # In a subprocess: the compiler's memory is returned to the system when it exits.
    names = [str(model_dir), str(adapter_dir or "-"), str(draft or "-"), str(check or "-"), str(kernels)]
    done = subprocess.run([sys.executable, "-m", "tune.fastlm", *names], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    if done.returncode != 0 or not all(path.is_file() for path in (draft, check, kernels) if path):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"the fast decoding build exited with {done.returncode}: {' / '.join(tail)}")


__all__ = ["FastPath", "FastState", "FastStatus", "prepare", "why_not"]
