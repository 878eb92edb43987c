"""LoRA training of a style adapter: one small, plain PyTorch loop."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from tune import distributed
from tune.batching import collate, encode_all, length_grouped_batches, micro_batches, summed_loss, target_count
from tune.checkpoint import Checkpoints, LoopState, run_key
from tune.config import TuneConfig
from tune.data import Example
from tune.encode import Encoded
from tune.errors import AdapterNotFoundError, DataError
from tune.models import load_model, resolve_dtype
from tune.plot import write_loss_curve
from tune.toolchain import compiler_available

Progress = Callable[[dict], None]
# Runs of at least this many steps compile the model's layers (tune.compile = "auto"): ~30 s of
# compilation, repaid by ~30% faster steps of ~3 s each after about 35 steps.
COMPILE_MIN_STEPS = 40
# Beside the adapter: the loss and speed of every step, and the evaluation losses.
METRICS_FILE = "metrics.json"
# Beside it: the same losses drawn (tune.plot).
LOSS_CURVE_FILE = "loss.png"
# What a PEFT adapter folder holds (``init_adapter``).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        train_loss: mean loss of the last ``min(steps, batches per epoch)`` steps: about one
            pass over the data at the end of training.
        eval_loss: per-token loss on the evaluation examples with the adapter, or None.
        base_eval_loss: the same loss for the base model before training, or None.
        steps: optimiser steps taken.
        epochs: passes over the data (fractional when ``max_steps`` stopped mid-epoch).
        tokens: tokens (prompt and reply, no padding) fed through the model while training.
        seconds: wall time of the whole call.
        warnings: plain-words notes (truncated or skipped examples, LoRA settings taken from
            ``init_adapter`` instead of the config).
        resumed_from: the step a checkpoint let this run start from, or None.
    """

    train_loss: float
    eval_loss: float | None
    base_eval_loss: float | None
    steps: int
    epochs: float
    tokens: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    resumed_from: int | None = None


def train_adapter(
    examples: Sequence[Example],
    base_model_dir: str | Path,
    out_dir: str | Path,
    config: TuneConfig | None = None,
    *,
    eval_examples: Sequence[Example] | None = None,
    progress: Progress | None = None,
    init_adapter: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_seconds: float = 120,
) -> TrainResult:
    """Train a LoRA adapter on chat examples and save it (PEFT format) with the tokenizer.

    Args:
        examples: training conversations; only assistant replies (and their end-of-turn
            token) are learnt.
        base_model_dir: a local model directory (see `resolve_base_model`).
        out_dir: where adapter_config.json, adapter_model.safetensors and the tokenizer go.
        config: hyperparameters; default `TuneConfig()`.
        eval_examples: held-out conversations; their loss is measured before and after.
        progress: called with ``{"step", "total", "loss", "tokens_per_s", "lr"}`` after every
            step, and with ``{"message": str}`` before slow phases (by the first process only,
            when data-parallel).
        init_adapter: a PEFT adapter folder to continue training from (retraining the active
            version) instead of a fresh LoRA; its rank, alpha and layers win over ``config``
            (a warning says so when they differ).
        checkpoint_dir: where the training state is saved while training, so that a run
            stopped by a crash or Ctrl-C continues from there when called again with the same
            examples, settings and folder, ending with the same adapter as an uninterrupted
            run. Deleted once the adapter is saved. None: no checkpoints.
        checkpoint_seconds: seconds of training between checkpoints (each epoch's end writes
            one too); 0 writes one after every step.

    Data parallel: launched by ``torchrun`` or ``accelerate launch``, every process calls this
    with the same arguments; each takes its share of every batch and the gradients are summed
    across processes before each step, so the adapter is that of one process on the whole batch.
    Only the first process writes the adapter, metrics and checkpoints; the others wait for it.

    Raises:
        DataError: no example has any reply tokens within ``max_length``.
        AdapterNotFoundError: ``init_adapter`` is not a PEFT adapter folder.
        TuneError: ``checkpoint_dir`` holds the checkpoint of a run on other examples or settings.
        ValueError: ``checkpoint_seconds`` is negative.
    """
    config = config or TuneConfig()
    if not checkpoint_seconds >= 0:
        raise ValueError(f"checkpoint_seconds must be a number >= 0, got {checkpoint_seconds!r}")
    checkpoints = Checkpoints(Path(checkpoint_dir) if checkpoint_dir is not None else None, checkpoint_seconds)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    distributed.setup()
    try:
        init = Path(init_adapter) if init_adapter is not None else None
        # With tune.compile, a compiler problem costs speed (the layer runs as is), never the run.
        with torch._dynamo.config.patch(suppress_errors=True):
            return _train(
                examples, Path(base_model_dir), Path(out_dir), config, eval_examples,
                (progress or _quiet) if distributed.is_main() else _quiet, init, checkpoints,
            )
    finally:
        torch.set_num_threads(threads)  # the setting is process-wide: give it back


def _train(
    examples: Sequence[Example],
    base_model_dir: Path,
    out_dir: Path,
    config: TuneConfig,
    eval_examples: Sequence[Example] | None,
    report: Progress,
    init_adapter: Path | None,
    checkpoints: Checkpoints,
) -> TrainResult:
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    report({"message": f"loading base model {base_model_dir}"})
    dtype = torch.bfloat16 if resolve_dtype(config.dtype) == "bfloat16" else torch.float32
    model, tokenizer = load_model(base_model_dir, dtype=dtype)
    train_set, warnings = encode_all(tokenizer, examples, config.max_length, "training")
    if not train_set:
        raise DataError("no training example has a reply within max_length tokens; check the data or raise max_length")
    eval_set: list[Encoded] = []
    if eval_examples:
        eval_set, eval_warnings = encode_all(tokenizer, eval_examples, config.max_length, "evaluation")
        warnings += eval_warnings
    model = _with_lora(model, config, init_adapter, warnings).to(distributed.device())
    if dtype == torch.bfloat16:
        _compute_in_bfloat16(model)
    pad_id = tokenizer.pad_token_id
    per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = per_epoch * config.epochs if config.max_steps is None else min(per_epoch * config.epochs, config.max_steps)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then_decay(total, config.warmup_ratio))
    if _compiles(config.compile, total):
        report({"message": f"compiling the model's layers for {total} steps (torch.compile; the first step takes ~30 s more)"})
        compile_layers(model)
    state = checkpoints.start(run_key(train_set, eval_set, config, base_model_dir, init_adapter),
                              model, optimizer, scheduler)
    resumed_from = len(state.losses) if checkpoints.resumed else None
    if resumed_from is not None:
        report({"message": f"resuming from step {resumed_from} of {total}"})
    elif eval_set:
        report({"message": f"measuring the base model's loss on {len(eval_set)} evaluation examples"})
        with model.disable_adapter():
            state.base_eval_loss = evaluate(model, eval_set, config.micro_batch_tokens, pad_id)

    order = torch.Generator().manual_seed(config.seed)
    if state.order_state is not None:
        order.set_state(state.order_state)  # resuming: the epoch's batches come out as before
    lengths = [len(item.input_ids) for item in train_set]
    model.train()
    while len(state.losses) < total and state.stopped_after is None:
        state.order_state = order.get_state()
        batches = length_grouped_batches(lengths, config.batch_size, order)
        for indices in batches[state.in_epoch :]:  # a resumed epoch skips the batches done
            if len(state.losses) >= total:
                break
            step_started = time.perf_counter()
            share = indices[distributed.rank() :: distributed.world()]  # this process's part of the batch
            loss, batch_tokens = _gradients(model, [train_set[i] for i in share], config.micro_batch_tokens, pad_id)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            rate = scheduler.get_last_lr()[0]  # the rate this step uses
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - step_started
            state.in_epoch += 1
            state.tokens += batch_tokens
            state.losses.append(loss)
            state.history.append({"step": len(state.losses), "loss": loss, "lr": rate, "tokens": batch_tokens,
                                  "seconds": elapsed})
            checkpoints.save(state)
            report({
                "step": len(state.losses),
                "total": total,
                "loss": loss,
                "tokens_per_s": batch_tokens / elapsed if elapsed > 0 else None,
                "tokens": batch_tokens,
                "seconds": elapsed,
                "lr": rate,
            })
        if state.in_epoch == len(batches):  # the epoch is over
            state.in_epoch, state.order_state = 0, order.get_state()
            if eval_set and config.epochs > 1 and len(state.losses) < total:
                _end_epoch(model, eval_set, config, pad_id, state, report)
        checkpoints.save(state, now=True)

    if state.stopped_after is not None:
        warnings.append(
            f"stopped early after epoch {state.stopped_after}: the held-out loss has not improved for "
            f"{config.patience} epochs; kept the adapter of epoch {state.epoch_losses.index(state.best[0]) + 1}"
        )
    eval_loss = None
    if eval_set:
        report({"message": "measuring the adapter's loss on the evaluation examples"})
        eval_loss = evaluate(model, eval_set, config.micro_batch_tokens, pad_id)
        state.epoch_losses.append(eval_loss)
        if state.best is not None and state.best[0] < eval_loss:
            model.load_state_dict(state.best[1], strict=False)  # an earlier epoch did better: keep it
            eval_loss = state.best[0]
    train_seconds = sum(h["seconds"] for h in state.history)
    metrics = {
        "dtype": str(dtype).removeprefix("torch."),
        "steps": state.history,
        "base_eval_loss": state.base_eval_loss,
        "eval_loss": eval_loss,
        "epoch_eval_losses": state.epoch_losses,
        "train_tokens": state.tokens,
        "train_seconds": train_seconds,
        "tokens_per_s": state.tokens / train_seconds if train_seconds else None,
    }
    if distributed.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n")
        checkpoints.finish()
        try:
            write_loss_curve(metrics, out_dir / LOSS_CURVE_FILE, steps_per_epoch=per_epoch)
        except Exception as exc:  # a picture must never cost a trained adapter
            warnings.append(f"the loss curve {LOSS_CURVE_FILE} was not drawn: {exc}; metrics.json has the same figures")
    distributed.barrier()  # the other processes return once the adapter is there
    tail = state.losses[-min(len(state.losses), per_epoch) :]
    return TrainResult(
        train_loss=sum(tail) / len(tail),
        eval_loss=eval_loss,
        base_eval_loss=state.base_eval_loss,
        steps=len(state.losses),
        epochs=len(state.losses) / per_epoch,
        tokens=state.tokens,
        seconds=time.perf_counter() - started,
        warnings=warnings,
        resumed_from=resumed_from,
    )


def _gradients(model: Any, items: Sequence[Encoded], max_tokens: int, pad_id: int) -> tuple[float, int]:
    """Backpropagate one optimiser step's batch, a micro-batch at a time.

    Data parallel, ``items`` is this process's share of the batch (maybe none); the gradients
    and figures returned are summed over every process, so they are those of the whole batch.

    Returns:
        The batch's mean loss per reply token, and the tokens fed through the model.
    """
    targets = int(distributed.all_reduce_sum(torch.tensor(target_count(items))))
    step_loss, tokens = 0.0, 0
    for micro in micro_batches(items, max_tokens):
        batch = collate(micro, pad_id)
        with autocast(model):
            loss_sum, _ = summed_loss(model, batch)
        # Dividing by the whole batch's count makes the summed gradients those of one big
        # batch: the mean loss over every reply token in it.
        (loss_sum / targets).backward()
        step_loss += float(loss_sum.detach())
        tokens += int(batch["attention_mask"].sum())
    distributed.all_reduce_gradients(p for p in model.parameters() if p.requires_grad)
    step_loss, tokens = distributed.all_reduce_sum(torch.tensor([step_loss, tokens], dtype=torch.float64)).tolist()
    return step_loss / targets, int(tokens)


def _end_epoch(
    model: Any, eval_set: Sequence[Encoded], config: TuneConfig, pad_id: int, state: LoopState, report: Progress
) -> None:
    """The end of an epoch that is not the last: keep the best adapter, and stop (set
    ``state.stopped_after``) when the held-out loss has not improved for ``patience`` epochs."""
    loss = evaluate(model, eval_set, config.micro_batch_tokens, pad_id)
    state.epoch_losses.append(loss)
    report({"message": f"epoch {len(state.epoch_losses)}: held-out loss {loss:.4f}"})
    if state.best is None or loss < state.best[0]:
        state.best = (loss, _trainable_state(model))
    elif config.patience and len(state.epoch_losses) - 1 - state.epoch_losses.index(state.best[0]) >= config.patience:
        state.stopped_after = len(state.epoch_losses)


def _quiet(info: dict) -> None:
    """The progress callback when none is given."""


def _with_lora(model: Any, config: TuneConfig, init_adapter: Path | None, warnings: list[str]) -> Any:
    """The base model wrapped with trainable LoRA layers: fresh ones, or those of ``init_adapter``."""
    if init_adapter is None:
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)
    missing = [name for name in ADAPTER_FILES if not (init_adapter / name).is_file()]
    if missing:
        raise AdapterNotFoundError(
            f"{init_adapter} is not a PEFT adapter folder: {' and '.join(missing)} missing; "
            "pass the folder of a trained adapter version"
        )
    wanted = _layer_names(model, config.target_modules)
    model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    found = model.peft_config["default"]
    layers = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    kept = []
    if found.r != config.rank:
        kept.append(f"rank {found.r} (the config says {config.rank})")
    if found.lora_alpha != config.alpha:
        kept.append(f"alpha {found.lora_alpha:g} (the config says {config.alpha:g})")
    if layers != wanted:
        kept.append(f"LoRA on {', '.join(sorted(layers))} (the config says {config.target_modules})")
    if kept:
        warnings.append(f"trained on from the adapter in {init_adapter}, whose settings were kept: {'; '.join(kept)}")
    return model


def _layer_names(model: Any, targets: str | list[str]) -> set[str]:
    """The last name part of each layer that PEFT would give LoRA for ``targets``."""
    head = model.get_output_embeddings()
    linear = [
        name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and module is not head
    ]
    if targets == "all-linear":
        chosen = linear
    elif isinstance(targets, str):  # PEFT reads a single string as a regular expression
        chosen = [name for name in linear if re.fullmatch(targets, name)]
    else:  # names match the whole module name or its last parts
        chosen = [name for name in linear if any(name == t or name.endswith("." + t) for t in targets)]
    return {name.rsplit(".", 1)[-1] for name in chosen}


def _compute_in_bfloat16(model: Any) -> None:
    """Let the LoRA layers take bfloat16 activations as they come.

    By default PEFT casts every LoRA layer's input to the float32 of the LoRA weights: two
    copies of a full activation per layer and pass. Under `autocast` the few LoRA weights are
    cast to bfloat16 instead, and they, their gradients and the optimiser stay float32. Measured
    on SmolLM2-135M with bitext examples: twice the tokens/s of the casting default.
    """
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False
    model.hybrid_autocast = True


def _compiles(setting: str, steps: int) -> bool:
    """Whether to compile: ``on``; or ``auto`` with enough steps to repay it and a C++ compiler."""
    if setting == "on":
        return True
    return setting == "auto" and steps >= COMPILE_MIN_STEPS and compiler_available()


def compile_layers(model: Any) -> None:
    """Compile each decoder layer (``torch.compile``, shapes dynamic) in place.

    Fusing the many small elementwise operations of a layer (norms, rotary embedding, the
    LoRA scaling and sums) is worth 30% of the training speed on a small model on a CPU, at
    the cost of about 30 s of compilation on the first step. Layers are compiled in place, so
    parameter names, and the saved adapter, stay the same.
    """
    layers = _decoder_layers(model)
    for layer in layers:
        layer.compile(dynamic=True)


def _decoder_layers(model: Any) -> list[torch.nn.Module]:
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return list(module)
    return []


def autocast(model: Any) -> contextlib.AbstractContextManager:
    """Mixed precision for a model set up by `_compute_in_bfloat16`; nothing for others."""
    if getattr(model, "hybrid_autocast", False):
        return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """A copy of the LoRA weights (the only trainable ones)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def evaluate(model: Any, items: Sequence[Encoded], max_tokens: int, pad_id: int) -> float:
    """Per-token loss over ``items`` (every labelled token weighs the same), in eval mode.

    Data parallel, each process measures its share of ``items`` and the sums are added up.

    Args:
        max_tokens: padded tokens per forward pass (see `TuneConfig.micro_batch_tokens`).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    # Eagerly: compiling the inference graph as well would cost more than it saves here.
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        for group in micro_batches(items[distributed.rank() :: distributed.world()], max_tokens):
            with autocast(model):
                loss_sum, n = summed_loss(model, collate(group, pad_id))
            total, count = total + float(loss_sum), count + n
    model.train(was_training)
    total, count = distributed.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64)).tolist()
    return total / count


def _warmup_then_decay(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(total * warmup_ratio)

    def factor(step: int) -> float:
        # LambdaLR calls this with the number of steps taken so far; the first step uses step 0.
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor
