"""Hyperparameters of one LoRA training run."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tune.errors import TuneConfigError


@dataclass
class TuneConfig:
    """How a style adapter is trained; the defaults suit a few hundred to a few thousand examples.

    Raises:
        TuneConfigError: from `__post_init__`, listing every invalid field at once.
    """

    # LoRA rank r: the width of the low-rank update. 8 is plenty for tone and format.
    rank: int = 8
    # LoRA alpha; the update is scaled by alpha / rank, so 2x rank keeps the usual scale of 2.
    alpha: float = 16
    # Dropout on the LoRA input. Off by default: on a CPU it cost 20% of the training speed
    # (227 against 284 tokens/s, SmolLM2-135M, all linear layers), because every LoRA layer
    # copies its input; held-out loss (--eval) is the better guard against overfitting.
    dropout: float = 0.0
    # Peak AdamW learning rate (after warm-up); 2e-4 is the common LoRA default.
    learning_rate: float = 2e-4
    # Passes over the training examples.
    epochs: int = 1
    # Stop after this many optimiser steps, even mid-epoch; None: run every epoch.
    max_steps: int | None = None
    # Examples per optimiser step.
    batch_size: int = 8
    # Most tokens (sequences x padded length) per forward pass; a batch is split into passes
    # whose gradients add up to the same step. Bounds memory; bigger passes use the CPU's
    # matrix units better (306 against 296 tokens/s at 4,096 against 1,024, bf16).
    micro_batch_tokens: int = 4096
    # Longest example, in tokens after the chat template; longer ones are cut (with a warning).
    max_length: int = 1024
    # Seed for LoRA initialisation, dropout and batch order, so a run can be repeated.
    seed: int = 0
    # Layers that get LoRA: "all-linear" (every linear layer but the output head) or names.
    target_modules: str | list[str] = "all-linear"
    # Share of the steps spent ramping the learning rate up from 0 before the linear decay.
    warmup_ratio: float = 0.05
    # AdamW weight decay on the LoRA weights; 0 because the updates are tiny already.
    weight_decay: float = 0.0
    # Gradients are clipped to this global L2 norm, which keeps early steps from blowing up.
    max_grad_norm: float = 1.0
    # CPU threads while training; None: torch's default (one per core). Set it lower when other
    # busy processes share the cores: oversubscribed threads wait on each other, ~10x slower.
    threads: int | None = None
    # With evaluation examples and several epochs: stop when the held-out loss has not improved
    # for this many epochs, and keep the adapter of the best epoch; 0 = never stop early.
    patience: int = 2
    # Number format of the frozen base weights while training: "auto" is bfloat16 on CPUs with
    # native bf16 (AMX or AVX512-BF16), else float32. The LoRA weights, their gradients and the
    # optimiser stay float32 either way, and the loss is computed in float32.
    dtype: str = "auto"
    # torch.compile of the model's layers: "auto" compiles runs of 40 steps or more when a C++
    # compiler is installed (30% faster steps after ~30 s of compilation), "on", or "off".
    compile: str = "auto"
    # Without --eval: the share of the examples held out to measure the adapter on (per-epoch
    # loss, early stopping, the gate), when there are at least 50; at most 200 are held out.
    val_split: float = 0.1
    # With --from: earlier examples mixed in, as a multiple of the new ones (at least 50), so the
    # adapter does not forget what it learnt; 0 = none.
    replay: float = 1.0
    # When a version of the name is active, the new one is activated only if it is not worse on
    # the held-out examples: "loss+style" (held-out loss and style score), "loss", or "off".
    gate: str = "loss+style"

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("rank", "epochs", "batch_size"):
            _check_int(problems, name, getattr(self, name), low=1)
        _check_int(problems, "max_length", self.max_length, low=16)
        _check_int(problems, "micro_batch_tokens", self.micro_batch_tokens, low=16)
        _check_int(problems, "seed", self.seed, low=0)
        _check_int(problems, "patience", self.patience, low=0)
        if self.compile not in ("auto", "on", "off"):
            problems.append(f"compile must be auto, on or off, got {self.compile!r}")
        if self.gate not in ("loss+style", "loss", "off"):
            problems.append(f"gate must be loss+style, loss or off, got {self.gate!r}")
        _check_number(problems, "val_split", self.val_split, low=0.0, high=0.5)
        _check_number(problems, "replay", self.replay, low=0.0, high=100.0)
        if self.dtype not in ("auto", "float32", "bfloat16"):
            problems.append(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        for name in ("max_steps", "threads"):
            if getattr(self, name) is not None:
                _check_int(problems, name, getattr(self, name), low=1)
        _check_number(problems, "alpha", self.alpha, low=0.0, low_open=True)
        _check_number(problems, "learning_rate", self.learning_rate, low=0.0, low_open=True, high=1.0)
        _check_number(problems, "dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _check_number(problems, "warmup_ratio", self.warmup_ratio, low=0.0, high=1.0, high_open=True)
        _check_number(problems, "weight_decay", self.weight_decay, low=0.0)
        _check_number(problems, "max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        targets = self.target_modules
        if isinstance(targets, (list, tuple)):
            if not targets or not all(isinstance(t, str) and t for t in targets):
                problems.append(
                    f"target_modules must be 'all-linear' or a non-empty list of layer names, got {targets!r}"
                )
            else:
                self.target_modules = list(targets)
        elif not isinstance(targets, str) or not targets:
            problems.append(f"target_modules must be 'all-linear' or a list of layer names, got {targets!r}")
        if problems:
            raise TuneConfigError(problems)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TuneConfig:
        """Build a config from a mapping, refusing unknown keys (a typo must not be ignored).

        Raises:
            TuneConfigError: unknown keys, or invalid values (all listed at once).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TuneConfigError([f"unknown setting {k!r} (known: {', '.join(sorted(known))})" for k in unknown])
        return cls(**values)


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but `epochs=True` is a mistake, not 1 epoch.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(problems: list[str], name: str, value: object, *, low: int) -> None:
    if not _is_int(value) or value < low:
        problems.append(f"{name} must be an integer >= {low}, got {value!r}")


def _check_number(
    problems: list[str],
    name: str,
    value: object,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high)
        )
    if not ok:
        lo = f"> {low}" if low_open else f">= {low}"
        hi = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")
        problems.append(f"{name} must be a number {lo}{hi}, got {value!r}")
