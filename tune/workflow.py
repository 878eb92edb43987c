"""One ``hybrid tune`` run: check the examples, train a new adapter version, record it."""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable, Collection, Sequence
import dataclasses
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tune import distributed
from tune.check import CheckReport, inspect_examples, too_long_warning
from tune.config import TuneConfig
from tune.data import Example, read_examples
from tune.defaults import apply_defaults, choose_defaults
from tune.errors import DataError, DatasetError, TrainingInterrupted, TuneError
from tune.registry import META_SCHEMA, AdapterMeta, AdapterRegistry, AdapterVersion, validate_name
from tune.tokens import load_tokenizer
from tune.train import Progress, TrainResult, train_adapter

# Below this many examples none are held out automatically: too few to spare, too few to measure.
MIN_SPLIT_EXAMPLES = 50
# At most this many are held out automatically: enough for a steady loss, and evaluation stays quick.
MAX_SPLIT_EXAMPLES = 200
# Replay at least this many earlier examples when continuing (if the lineage has them).
MIN_REPLAY = 50
# Inside a version's directory: the examples it learnt (for replay), its training checkpoint.
EXAMPLES_FILE = "examples.jsonl"
CHECKPOINT_DIR = "checkpoint"
# The gate's allowances for measurement noise: a new version may be this much worse and pass.
# Held-out loss is measured on hundreds of tokens, so 0.01 nats; the style score comes from
# GATE_EXAMPLES generated replies, whose mean moves by a few hundredths between near-equal models.
LOSS_TOLERANCE = 0.01
STYLE_TOLERANCE = 0.02
# Replies generated per version for the gate's style score, and their length: about a minute each.
GATE_EXAMPLES = 8
GATE_NEW_TOKENS = 128


@dataclass(frozen=True)
class TuneOutcome:
    """The result of `tune`.

    Attributes:
        version: the new adapter version.
        result: losses, steps and timings of the training run.
        examples: new training examples used (over-long ones are skipped, and under ``force``
            lines with problems too).
        check: the dataset check of the training files, warnings included.
        activated: whether the new version is now the active one (see `Gate`).
        gate: the comparison with the version that was active, or None when there was none
            to compare with.
        settings: one line per chosen hyperparameter: its value and why (data size, or set
            by the user).
        parent: ``NAME@vN`` the run continued from (``from_ref``), or None.
        replayed: earlier examples mixed in from the parent's lineage.
        held_out: examples held out of the training files for evaluation (0 with ``eval_path``).
        skipped: training examples left out for being longer than ``config.max_length``
            (``check.skipped`` names them; one of ``check.warnings`` says so).
    """

    version: AdapterVersion
    result: TrainResult
    examples: int
    check: CheckReport
    activated: bool = True
    gate: dict[str, Any] | None = None
    settings: list[str] = field(default_factory=list)
    parent: str | None = None
    replayed: int = 0
    held_out: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``hybrid tune --json``."""
        result = self.result
        body: dict[str, Any] = {
            "adapter": self.version.ref,
            "path": str(self.version.path),
            "examples": self.examples,
            "train_loss": result.train_loss,
            "eval_loss": result.eval_loss,
            "base_eval_loss": result.base_eval_loss,
            "seconds": round(result.seconds, 1),
            "warnings": list(self.check.warnings) + list(result.warnings),
            "problems": [p.to_dict() for p in self.check.problems],  # the lines --force skipped
            "skipped": self.skipped,  # over-long examples left out (named in a warning)
            "line_warnings": [p.to_dict() for p in self.check.line_warnings],
            "activated": self.activated,
            "gate": self.gate,
            "settings": self.settings,
            "parent": self.parent,
            "replayed": self.replayed,
            "held_out": self.held_out,
            "steps": result.steps,
            "resumed_from": result.resumed_from,
            "files": {"metrics": str(self.version.path / "metrics.json"), "loss_curve": str(self.version.path / "loss.png")},
        }
        if context := self.version.meta.context:  # trained with context: what the pairing did
            body["context"] = context
            body["warnings"] = [*body["warnings"], *context["warnings"]]
        return body


def tune(
    example_paths: str | Path | Sequence[str | Path],
    *,
    name: str,
    registry: AdapterRegistry,
    base_model_dir: Path,
    base_model_spec: str,
    config: TuneConfig,
    given: Collection[str] | None = None,
    eval_path: str | Path | None = None,
    force: bool = False,
    input_column: str | None = None,
    output_column: str | None = None,
    progress: Progress | None = None,
    augment: Callable[[Sequence[Example]], list[Example]] | None = None,
    from_ref: str | None = None,
    resume: bool = False,
) -> TuneOutcome:
    """Check the examples, train ``NAME@vN`` (the next N) and activate it if it passes the gate.

    The steps, each reported through ``progress`` as ``{"message": ...}``:

    1. The examples are checked as by ``hybrid tune --check``; those longer than
       ``config.max_length`` are skipped, with one warning naming them.
    2. Evaluation examples: ``eval_path``, or else ``config.val_split`` of the training examples
       (when there are at least `MIN_SPLIT_EXAMPLES`).
    3. With ``from_ref``: training starts from that adapter's weights, and earlier examples of
       its lineage are mixed in (``config.replay`` times as many as the new ones), so the
       adapter learns the new examples without forgetting the old ones.
    4. Rank, learning rate, epochs and batch size that the user did not give (``given``) are
       chosen from the number of training examples (`tune.defaults`).
    5. Training, checkpointed inside the new version's directory: after an interruption,
       ``resume`` continues the newest unfinished version from its checkpoint.
    6. The gate: with evaluation examples and an active version of ``name``, the new version
       is activated only if its held-out loss and style score are not worse (``config.gate``).

    Args:
        example_paths: training example files (see `read_examples` for the formats).
        name: adapter name (see `ADAPTER_NAME_RE`).
        registry: where versions are kept.
        base_model_dir: the resolved base model directory.
        base_model_spec: the spec it was resolved from, recorded so the adapter can be loaded
            on the same base later.
        config: hyperparameters.
        given: names of the ``config`` fields the user set, on top of those whose value
            differs from `TuneConfig`'s default; the others may be chosen from the data size.
        eval_path: held-out examples; their loss is measured before and after training.
        force: train even when the check finds problems, skipping the bad lines.
        input_column: the input field or CSV column; default: detected.
        output_column: the output field or CSV column; default: detected.
        progress: see `train_adapter`.
        augment: applied to the checked training and evaluation examples before training
            (for example, to pair each with retrieved passages); the check sees the originals.
        from_ref: continue from this adapter (``NAME``, ``NAME@vN``): its weights and its data.
        resume: continue the newest unfinished version of ``name`` from its checkpoint.

    Raises:
        DatasetError: the check found problems (in the training or evaluation file) and
            ``force`` is off, or every example is over-long; ``error.report`` lists them.
        DataError: a file is missing or nothing usable is left.
        TrainingInterrupted: Ctrl-C during training; the checkpoint is kept for ``resume``.
        TuneError: the name is invalid, nothing to resume, or training failed (the unfinished
            version is removed).
    """
    validate_name(name)
    distributed.setup()  # under torchrun: every process runs this function; rank 0 writes
    report_to = (progress if distributed.is_main() else None) or (lambda info: None)
    stock = TuneConfig()
    # Set by the user: named in ``given`` (a flag equal to the default still counts), or any
    # field whose value differs from the default (hybrid.toml, HYBRID_TUNE__*, Python).
    given = set(given or ()) | {f.name for f in dataclasses.fields(stock) if getattr(config, f.name) != getattr(stock, f.name)}
    paths = [Path(example_paths)] if isinstance(example_paths, (str, Path)) else [Path(p) for p in example_paths]
    columns = {"input_column": input_column, "output_column": output_column}
    # The same check as `hybrid tune --check`, lengths measured with the base model's tokenizer.
    checking = {**columns, **_tokenizer_of(base_model_dir, base_model_spec), "max_tokens": config.max_length}
    examples, report = inspect_examples(paths, **checking)
    _refuse_if_none_fits(examples, report, paths)
    if not report.ok and not force:
        raise DatasetError(_refusal(report, "training examples"), report)
    if not examples:
        raise DataError(f"no usable training examples in {', '.join(map(str, paths))}; see them with --check")
    eval_examples: list[Example] | None = None
    held_out_count = 0
    if eval_path is not None:
        eval_examples, eval_report = inspect_examples(eval_path, **checking)
        _refuse_if_none_fits(eval_examples, eval_report, [Path(eval_path)])
        if not eval_report.ok and not force:
            raise DatasetError(_refusal(eval_report, "evaluation examples"), eval_report)
        if eval_report.skipped:
            report.warnings.append(too_long_warning(eval_report.skipped, config.max_length, "evaluation examples"))
        overlap = _overlap(examples, eval_examples)
        if overlap:
            report.warnings.append(
                f"{overlap} evaluation examples also appear in the training data, so the held-out loss is optimistic"
            )
    elif config.val_split > 0 and len(examples) >= MIN_SPLIT_EXAMPLES:
        examples, eval_examples = _split(examples, config.val_split, config.seed)
        held_out_count = len(eval_examples)
        report_to({"message": f"held out {held_out_count} of the examples to measure the adapter on (--eval FILE to choose them)"})
    elif config.val_split > 0:
        report.warnings.append(
            f"only {len(examples)} examples, so none were held out: there is no held-out loss, no early stopping "
            f"and no gate against the active version; pass --eval FILE to measure the adapter"
        )

    parent = registry.resolve(from_ref) if from_ref else None
    if from_ref and parent is None:
        raise TuneError("--from needs an adapter to continue from, not 'none'")
    replay: list[Example] = []
    if parent is not None:
        replay = _replay_sample(registry, parent, examples, config, report.warnings)
        report_to({"message": f"continuing from {parent.ref}; replaying {len(replay)} of its earlier examples"})
    train_examples = examples + replay
    chosen = _choose_settings(config, given, train_examples, report, parent)
    config = dataclasses.replace(config, **chosen.pop("values"))
    for line in chosen["lines"]:
        report_to({"message": line})

    held_out = eval_examples
    if augment is not None:
        train_examples = augment(train_examples)
        held_out = augment(eval_examples) if eval_examples else eval_examples
    version, out_dir = _shared_version_dir(registry, name, resume)
    try:
        result = train_adapter(
            train_examples, base_model_dir, out_dir, config, eval_examples=held_out, progress=progress,
            init_adapter=parent.path if parent is not None else None, checkpoint_dir=out_dir / CHECKPOINT_DIR,
        )
        main = distributed.is_main()
        # Training is over: leave the process group, so rank 0 gates and records on its own.
        distributed.shutdown()
        if not main:  # rank 0 saved the adapter and records the version
            return TuneOutcome(AdapterVersion(name, version, out_dir), result, len(examples), report, activated=False)
        _write_examples(out_dir / EXAMPLES_FILE, examples)
        active = registry.active(name)
        gate = _gate(config, active, out_dir, base_model_dir, held_out, result, report_to)
        meta = AdapterMeta.read({
            "schema": META_SCHEMA,
            "name": name,
            "version": version,
            "base_model": base_model_spec,
            "base_model_dir": str(base_model_dir),
            "data_files": [str(p) for p in paths],
            "data_sha256": _sha256(paths),
            "examples": len(examples),
            "skipped_too_long": len(report.skipped),
            "eval_file": str(eval_path) if eval_path is not None else None,
            "eval_sha256": _sha256([Path(eval_path)]) if eval_path is not None else None,
            "eval_examples": len(eval_examples or []),
            "held_out_from_training": held_out_count,
            "parent": parent.ref if parent is not None else None,
            "lineage": _lineage(parent),
            "replayed": len(replay),
            "hyperparameters": asdict(config),
            "settings": chosen["lines"],
            "losses": {
                "train_loss": result.train_loss,
                "eval_loss": result.eval_loss,
                "base_eval_loss": result.base_eval_loss,
            },
            "gate": gate,
            "steps": result.steps,
            "epochs": result.epochs,
            "tokens": result.tokens,
            "seconds": round(result.seconds, 2),
            "warnings": report.warnings + result.warnings,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tune_version": _version(),
        })
        activate = gate is None or gate["passed"]
        finished = registry.finalize(name, version, meta, activate=activate)
    except KeyboardInterrupt:
        if not distributed.is_main():
            raise
        if (out_dir / CHECKPOINT_DIR).is_dir() and not (out_dir / "meta.json").is_file():
            raise TrainingInterrupted(
                f"training of {name}@v{version} was interrupted; its checkpoint is kept in {out_dir / CHECKPOINT_DIR}. "
                "Run the same command with --resume to continue from it"
            ) from None
        registry.discard(name, version)
        raise
    except BaseException:  # never leave a half-made version behind
        if distributed.is_main():
            registry.discard(name, version)
        raise
    return TuneOutcome(
        finished, result, len(examples), report, activated=activate, gate=gate, settings=chosen["lines"],
        parent=parent.ref if parent is not None else None, replayed=len(replay), held_out=held_out_count,
        skipped=len(report.skipped),
    )


def _split(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ``share`` of the examples (at most `MAX_SPLIT_EXAMPLES`), drawn with ``seed``.

    Examples with the same prompt stay on the same side, so the held-out loss is not flattered
    by a near copy in training.
    """
    by_prompt: dict[str, list[Example]] = {}
    for example in examples:
        by_prompt.setdefault(repr(example.messages[:-1]), []).append(example)
    groups = list(by_prompt.values())
    random.Random(seed).shuffle(groups)
    want = min(MAX_SPLIT_EXAMPLES, max(1, round(len(examples) * share)))
    held: list[Example] = []
    kept: list[Example] = []
    for group in groups:
        (held if len(held) < want else kept).extend(group)
    order = {id(e): i for i, e in enumerate(examples)}  # keep file order within each side
    return sorted(kept, key=lambda e: order[id(e)]), sorted(held, key=lambda e: order[id(e)])


def _replay_sample(
    registry: AdapterRegistry, parent: AdapterVersion, new: Sequence[Example], config: TuneConfig, warnings: list[str]
) -> list[Example]:
    """Earlier examples of the parent's lineage to mix in with the new ones.

    Each version keeps the examples it was trained on (`EXAMPLES_FILE`), so the pool is every
    example its lineage learnt. Old examples whose prompt a new example repeats are left out:
    the new reply is the house style now.
    """
    pool: list[Example] = []
    # The parent, then its ancestors (the lineage ends with the parent itself).
    chain = [parent] + [v for ref in reversed(_lineage(parent)[:-1]) if (v := _resolve_quietly(registry, ref))]
    missing = []
    for version in chain:
        stored = version.path / EXAMPLES_FILE
        if stored.is_file():
            found, _ = read_examples(stored)
            pool += found
        else:
            missing.append(version.ref)
    if missing:
        warnings.append(
            f"no stored examples for {', '.join(missing)} (trained before versions kept their examples), "
            "so nothing of theirs is replayed"
        )
    prompts = {repr(e.messages[:-1]) for e in new}
    seen: set[str] = set()
    unique = []
    for example in pool:
        key = repr(example.messages)
        if key not in seen and repr(example.messages[:-1]) not in prompts:
            seen.add(key)
            unique.append(example)
    want = min(len(unique), max(MIN_REPLAY, round(config.replay * len(new)))) if config.replay > 0 else 0
    return random.Random(config.seed).sample(unique, want)


def _choose_settings(
    config: TuneConfig, given: Collection[str], examples: Sequence[Example], report: CheckReport,
    parent: AdapterVersion | None,
) -> dict[str, Any]:
    """``{"values": fields to replace, "lines": one line per chosen setting}``."""
    lengths = report.lengths or {}
    median = lengths.get("median") if lengths.get("unit") == "tokens" else None
    user = {name: getattr(config, name) for name in given}
    inherited = []
    if parent is not None:
        # Continuing an adapter keeps its shape: the rank and scale of the weights it starts from.
        shape = parent.meta.hyperparameters
        for name in ("rank", "alpha"):
            if name not in user and isinstance(shape.get(name), (int, float)):
                user[name] = shape[name]
                inherited.append(name)
    values, lines = apply_defaults(user, choose_defaults(len(examples), median or None))
    for name in inherited:
        lines = [
            line.replace("set by you", f"kept from {parent.ref}, which this run continues")
            if line.startswith(f"{name} ") else line
            for line in lines
        ]
    fields = {f.name for f in dataclasses.fields(TuneConfig)}
    return {"values": {k: v for k, v in values.items() if k in fields}, "lines": lines}


def _shared_version_dir(registry: AdapterRegistry, name: str, resume: bool) -> tuple[int, Path]:
    """`_version_dir` on rank 0, handed to every process (the same across processes)."""
    chosen: tuple[int, Path] | str | None = None
    if distributed.is_main():
        try:
            chosen = _version_dir(registry, name, resume)
        except TuneError as exc:
            chosen = str(exc)
            if distributed.world() == 1:
                raise
    chosen = distributed.broadcast_object(chosen)
    if isinstance(chosen, str):  # rank 0 failed: every process fails with its message
        raise TuneError(chosen)
    return chosen


def _version_dir(registry: AdapterRegistry, name: str, resume: bool) -> tuple[int, Path]:
    """A new version, or with ``resume`` the newest unfinished one that holds a checkpoint."""
    if not resume:
        return registry.create_version(name)
    unfinished = registry.unfinished(name)
    for number, path in reversed(unfinished):
        if (path / CHECKPOINT_DIR).is_dir():
            return number, path
    raise TuneError(
        f"nothing to resume: no interrupted training of {name} has a checkpoint; run without --resume to start afresh"
    )


def _gate(
    config: TuneConfig,
    active: AdapterVersion | None,
    new_dir: Path,
    base_model_dir: Path,
    held_out: Sequence[Example] | None,
    result: TrainResult,
    report: Progress,
) -> dict[str, Any] | None:
    """Compare the new version with the active one on the held-out examples.

    Returns:
        None when there is nothing to compare with (no active version, no held-out examples,
        the gate is off, or the active version was trained on another base model); else the
        figures of both and ``passed``.
    """
    if config.gate == "off" or active is None or not held_out:
        return None
    if Path(active.meta.base_model_dir or base_model_dir) != Path(base_model_dir):
        return None
    from tune.evaluate import evaluate_adapter

    style = config.gate == "loss+style"
    figures: dict[str, dict[str, Any]] = {}
    for label, path in (("active", active.path), ("new", new_dir)):
        report({"message": f"gate: measuring the {label} version ({active.ref if label == 'active' else 'this run'}) on {len(held_out)} held-out examples"})
        measured = evaluate_adapter(
            path, base_model_dir, held_out, max_length=config.max_length, base=False,
            max_examples=GATE_EXAMPLES if style else 0, max_new_tokens=GATE_NEW_TOKENS, seed=config.seed,
        )
        figures[label] = {"eval_loss": measured.eval_loss, "style_score": measured.style_score if style else None}
    new, old = figures["new"], figures["active"]
    reasons = []
    if new["eval_loss"] > old["eval_loss"] + LOSS_TOLERANCE:
        reasons.append(f"held-out loss {new['eval_loss']:.3f} is worse than {active.ref}'s {old['eval_loss']:.3f}")
    if style and new["style_score"] < old["style_score"] - STYLE_TOLERANCE:
        reasons.append(f"style score {new['style_score']:.3f} is worse than {active.ref}'s {old['style_score']:.3f}")
    return {"against": active.ref, "mode": config.gate, "active": old, "new": new, "passed": not reasons, "reasons": reasons}


def _lineage(version: AdapterVersion | None) -> list[str]:
    """The references a version descends from, oldest first, ending with ``version`` itself."""
    if version is None:
        return []
    earlier = version.meta.lineage
    return [*[ref for ref in earlier if isinstance(ref, str)], version.ref] if version.version else []


def _resolve_quietly(registry: AdapterRegistry, ref: str) -> AdapterVersion | None:
    try:
        return registry.resolve(ref)
    except TuneError:
        return None


def _write_examples(path: Path, examples: Sequence[Example]) -> None:
    """Keep the examples a version learnt, as chat JSONL, so a later ``--from`` can replay them."""
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps({"messages": list(example.messages)}, ensure_ascii=False) + "\n")


def _tokenizer_of(base_model_dir: Path, spec: str) -> dict[str, Any]:
    """``tokenizer`` and ``tokenizer_name`` for the check; none when the base model has no usable
    tokenizer (training then fails with the reason, inside the new version it removes)."""
    try:
        name = Path(spec).name if Path(spec).is_dir() else spec
        return {"tokenizer": load_tokenizer(base_model_dir, base_model_dir), "tokenizer_name": name}
    except TuneError:
        return {}


def _refuse_if_none_fits(examples: Sequence[Example], report: CheckReport, paths: Sequence[Path]) -> None:
    """Over-long examples are skipped, but not all of them: then there is nothing to train on
    (and ``--force`` cannot help)."""
    if examples or not report.skipped:
        return
    nothing = next(p for p in report.problems if p.code == "all_too_long")
    raise DatasetError(f"{', '.join(map(str, paths))}: {nothing.message}", report)


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
