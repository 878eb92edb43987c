"""One ``hybrid tune`` run: check the examples, train a new adapter version, record it."""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tune.check import CheckReport, inspect_examples
from tune.config import TuneConfig
from tune.data import Example
from tune.errors import DataError, DatasetError, TuneError
from tune.registry import AdapterRegistry, AdapterVersion, validate_name
from tune.tokens import load_tokenizer
from tune.train import Progress, TrainResult, train_adapter


@dataclass(frozen=True)
class TuneOutcome:
    """The result of `tune`.

    Attributes:
        version: the new adapter version (active unless activation was turned off).
        result: losses, steps and timings of the training run.
        examples: training examples used (lines with problems are skipped under ``force``).
        check: the dataset check of the training files, warnings included.
    """

    version: AdapterVersion
    result: TrainResult
    examples: int
    check: CheckReport


def tune(
    example_paths: str | Path | Sequence[str | Path],
    *,
    name: str,
    registry: AdapterRegistry,
    base_model_dir: Path,
    base_model_spec: str,
    config: TuneConfig,
    eval_path: str | Path | None = None,
    force: bool = False,
    input_column: str | None = None,
    output_column: str | None = None,
    progress: Progress | None = None,
    augment: Callable[[Sequence[Example]], list[Example]] | None = None,
) -> TuneOutcome:
    """Check the examples, train ``NAME@vN`` (the next N) and make it the active version.

    Args:
        example_paths: training example files (see `read_examples` for the formats).
        name: adapter name (see `ADAPTER_NAME_RE`).
        registry: where versions are kept.
        base_model_dir: the resolved base model directory.
        base_model_spec: the spec it was resolved from, recorded so the adapter can be loaded
            on the same base later.
        config: hyperparameters.
        eval_path: held-out examples; their loss is measured before and after training.
        force: train even when the check finds problems, skipping the bad lines.
        input_column: the input field or CSV column; default: detected.
        output_column: the output field or CSV column; default: detected.
        progress: see `train_adapter`.
        augment: applied to the checked training and evaluation examples before training
            (for example, to pair each with retrieved passages); the check sees the originals.

    Raises:
        DatasetError: the check found problems (in the training or evaluation file) and
            ``force`` is off; ``error.report`` lists them.
        DataError: a file is missing or nothing usable is left.
        TuneError: the name is invalid, or training failed (the unfinished version is removed).
    """
    validate_name(name)
    paths = [Path(example_paths)] if isinstance(example_paths, (str, Path)) else [Path(p) for p in example_paths]
    columns = {"input_column": input_column, "output_column": output_column}
    # The same check as `hybrid tune --check`, lengths measured with the base model's tokenizer.
    checking = {**columns, **_tokenizer_of(base_model_dir, base_model_spec), "max_tokens": config.max_length}
    examples, report = inspect_examples(paths, **checking)
    if not report.ok and not force:
        raise DatasetError(_refusal(report, "training examples"), report)
    if not examples:
        raise DataError(f"no usable training examples in {', '.join(map(str, paths))}; see them with --check")
    eval_examples = None
    if eval_path is not None:
        eval_examples, eval_report = inspect_examples(eval_path, **checking)
        if not eval_report.ok and not force:
            raise DatasetError(_refusal(eval_report, "evaluation examples"), eval_report)
        overlap = _overlap(examples, eval_examples)
        if overlap:
            report.warnings.append(
                f"{overlap} evaluation examples also appear in the training data, so the held-out loss is optimistic"
            )
    train_examples, held_out = examples, eval_examples
    if augment is not None:
        train_examples = augment(examples)
        held_out = augment(eval_examples) if eval_examples else eval_examples
    version, out_dir = registry.create_version(name)
    try:
        result = train_adapter(
            train_examples, base_model_dir, out_dir, config, eval_examples=held_out, progress=progress
        )
        meta = {
            "name": name,
            "version": version,
            "base_model": base_model_spec,
            "base_model_dir": str(base_model_dir),
            "data_files": [str(p) for p in paths],
            "data_sha256": _sha256(paths),
            "examples": len(examples),
            "eval_file": str(eval_path) if eval_path is not None else None,
            "eval_sha256": _sha256([Path(eval_path)]) if eval_path is not None else None,
            "eval_examples": len(eval_examples or []),
            "hyperparameters": asdict(config),
            "losses": {
                "train_loss": result.train_loss,
                "eval_loss": result.eval_loss,
                "base_eval_loss": result.base_eval_loss,
            },
            "steps": result.steps,
            "epochs": result.epochs,
            "tokens": result.tokens,
            "seconds": round(result.seconds, 2),
            "warnings": report.warnings + result.warnings,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tune_version": _version(),
        }
        finished = registry.finalize(name, version, meta, activate=True)
    except BaseException:  # including Ctrl-C: never leave a half-made version behind
        registry.discard(name, version)
        raise
    return TuneOutcome(finished, result, len(examples), report)


def _tokenizer_of(base_model_dir: Path, spec: str) -> dict[str, Any]:
    """``tokenizer`` and ``tokenizer_name`` for the check; none when the base model has no usable
    tokenizer (training then fails with the reason, inside the new version it removes)."""
    try:
        name = Path(spec).name if Path(spec).is_dir() else spec
        return {"tokenizer": load_tokenizer(base_model_dir, base_model_dir), "tokenizer_name": name}
    except TuneError:
        return {}


def _refusal(report: CheckReport, what: str) -> str:
    first = report.problems[0]
    return (
        f"{len(report.problems)} problems in the {what} (first: {first.source} line {first.line}: "
        f"[{first.code}] {first.message}); fix them, see them all with --check, or pass --force to skip those lines"
    )


def _overlap(train: Sequence, held_out: Sequence) -> int:
    seen = {repr(e.messages[:-1]) for e in train}
    return sum(1 for e in held_out if repr(e.messages[:-1]) in seen)


def _sha256(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _version() -> str:
    try:
        return importlib.metadata.version("hybrid")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
