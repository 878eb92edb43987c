"""Training checkpoints, so an interrupted run resumes where it stopped (private to the package).

A checkpoint folder holds two files: ``run.json``, what the run trains on (hashes of the encoded
examples, the settings, the base model and the starting adapter), written once when the run
starts; and ``state.pt``, everything the loop needs to carry on as if never stopped, replaced
whole (written under a temporary name, then renamed) so a kill at any moment leaves either the
previous state or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from tune import distributed
from tune.config import TuneConfig
from tune.encode import Encoded
from tune.errors import TuneError

RUN_FILE = "run.json"
STATE_FILE = "state.pt"


@dataclass
class LoopState:
    """The training loop's progress; with the weights, optimiser and scheduler, a checkpoint.

    Attributes:
        losses: the loss of every optimiser step so far (their count is the step count).
        history: per step: loss, learning rate, tokens and seconds (for metrics.json).
        epoch_losses: held-out loss after each finished epoch.
        best: the lowest held-out loss so far and the LoRA weights that reached it.
        tokens: tokens fed through the model so far.
        base_eval_loss: the base model's held-out loss, measured once before training.
        in_epoch: batches of the current epoch already done.
        order_state: the batch-order generator's state when the current epoch began, so its
            batches can be drawn again in the same order.
        stopped_after: the epoch after which early stopping ended training, if it did.
    """

    losses: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    tokens: int = 0
    base_eval_loss: float | None = None
    in_epoch: int = 0
    order_state: torch.Tensor | None = None
    stopped_after: int | None = None


class Checkpoints:
    """Where a run keeps its checkpoint (``checkpoint_dir``), and when it writes one.

    Data parallel, only the first process reads and writes the folder; the others get what it
    read, so every process resumes from the same state.
    """

    def __init__(self, directory: Path | None, seconds: float) -> None:
        self.directory, self.seconds = directory, seconds
        self.resumed = False
        self._saved_at = time.perf_counter()
        self._parts: tuple[Any, Any, Any] | None = None

    def start(self, key: dict[str, Any], model: Any, optimizer: Any, scheduler: Any) -> LoopState:
        """The loop state to start from: the saved one when the folder holds this run's checkpoint.

        Raises:
            TuneError: the folder holds a checkpoint of another run.
        """
        self._parts = (model, optimizer, scheduler)
        if self.directory is None:
            return LoopState()
        saved: dict[str, Any] | TuneError | None = None
        if distributed.is_main():
            try:
                saved = open_checkpoint(self.directory, key)
            except TuneError as exc:  # handed on, so that every process raises it
                saved = exc
        saved = distributed.broadcast_object(saved)
        if isinstance(saved, TuneError):
            raise saved
        self._saved_at = time.perf_counter()
        if saved is None:
            return LoopState()
        self.resumed = True
        return restore(saved, model, optimizer, scheduler)

    def save(self, state: LoopState, *, now: bool = False) -> None:
        """Write a checkpoint when ``now`` or when ``seconds`` have passed since the last one."""
        if self.directory is None or not distributed.is_main():
            return
        if not now and time.perf_counter() - self._saved_at < self.seconds:
            return
        write_state(self.directory, state, *self._parts)
        self._saved_at = time.perf_counter()

    def finish(self) -> None:
        """The adapter is saved: the checkpoint is no longer needed."""
        if self.directory is not None:
            discard(self.directory)


def run_key(
    train_set: Sequence[Encoded],
    eval_set: Sequence[Encoded],
    config: TuneConfig,
    base_model_dir: Path,
    init_adapter: Path | None,
) -> dict[str, Any]:
    """What a checkpoint must have been made from to be resumed: the contents of run.json."""
    data = hashlib.sha256()
    for part, items in (("train", train_set), ("eval", eval_set)):
        data.update(part.encode())
        for item in items:
            data.update(json.dumps([item.input_ids, item.labels]).encode())
    settings = asdict(config)
    del settings["threads"]  # how fast, not what is learnt
    adapter = None
    if init_adapter is not None:
        adapter = {"name": init_adapter.name, "sha256": hashlib.sha256(
            (init_adapter / "adapter_model.safetensors").read_bytes()).hexdigest()}
    parts = {"data_sha256": data.hexdigest(), "config": settings, "base_model": base_model_dir.name,
             "init_adapter": adapter}
    whole = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return {"fingerprint": whole, **parts}


def open_checkpoint(directory: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state in ``directory`` if it belongs to the run ``key`` describes.

    Starts the folder (writes run.json) when it holds no checkpoint yet.

    Returns:
        The payload written by `write_state`, or None when there is nothing to resume.

    Raises:
        TuneError: the checkpoint was made from other examples or settings.
    """
    run_file = directory / RUN_FILE
    if run_file.is_file():
        found = json.loads(run_file.read_text())
        if found != _plain(key):
            differ = ", ".join(name for name in key if name != "fingerprint" and found.get(name) != _plain(key)[name])
            raise TuneError(
                f"the checkpoint in {directory} was made from different examples or settings "
                f"({differ or 'format'} differ); "
                "pass the same examples and settings to resume it, or delete the folder to start over"
            )
        if not (directory / STATE_FILE).is_file():
            return None  # stopped before its first checkpoint
        try:
            return torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise TuneError(
                f"the checkpoint {directory / STATE_FILE} cannot be read ({exc}); delete the folder to start over"
            ) from exc
    directory.mkdir(parents=True, exist_ok=True)
    _replace(run_file, lambda file: file.write((json.dumps(key, indent=1) + "\n").encode()))
    return None


def write_state(directory: Path, state: LoopState, model: Any, optimizer: Any, scheduler: Any) -> None:
    """Write the whole training state to ``directory``, replacing the previous one at once."""
    payload = {
        "loop": vars(state),
        "lora": {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),  # LoRA dropout draws from it
    }
    _replace(directory / STATE_FILE, lambda file: torch.save(payload, file))


def restore(payload: dict[str, Any], model: Any, optimizer: Any, scheduler: Any) -> LoopState:
    """Put a saved state back into the model, optimiser and scheduler; returns the loop's part."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in payload["lora"].items():
            parameters[name].copy_(value)
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng"])
    return LoopState(**payload["loop"])


def discard(directory: Path) -> None:
    """Remove a finished run's checkpoint files, and the folder when nothing else is in it."""
    for name in (STATE_FILE, RUN_FILE):
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # something else lives there: leave it
        pass


def _replace(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file, flushed to disk, then renamed over it."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _plain(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(key))
