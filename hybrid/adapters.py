"""The style adapters: registry, activation, checking, tuning, evaluation and export.

``Adapters`` is the one way the CLI, the server and ``Pipeline`` reach the adapter registry
(``tune.AdapterRegistry``) and the base models. Its errors are ``HybridError`` (through
``leaf_errors``), so no caller sees a ``tune`` exception or a registry file layout. Answering
with an adapter (loading generators) stays with ``Pipeline``, which composes this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ingest
import tune
from hybrid.config import DEFAULT_ADAPTER_NAME, Settings
from hybrid.errors import BadRequestError, NotFoundError, leaf_errors


class Adapters:
    """The adapter registry under ``settings.adapters_dir`` and the base models under ``settings.models_dir``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # With a PostgreSQL store, which version each name stands for lives in its database, so
        # every server of the store answers with the adapter activated through any of them.
        # A name never activated there keeps the active.json it had before the move to PostgreSQL.
        shared = None
        if settings.store is not None:
            files = tune.ActiveFiles(settings.adapters_dir)
            shared = tune.FirstOf(ingest.SharedState(settings.store, "adapter"), files)
        self.registry = tune.AdapterRegistry(settings.adapters_dir, shared)

    @property
    def root(self) -> Path:
        return self.registry.root

    def base_model_dir(self, spec: str | None = None, progress: Callable[[str], None] | None = None) -> Path:
        """Resolve a base model spec (default: ``settings.base_model``) to a local directory."""
        with leaf_errors():
            return tune.resolve_base_model(
                spec or self.settings.base_model,
                self.settings.models_dir,
                allow_download=self.settings.allow_download,
                progress=progress,
            )

    def resolve(self, ref: str | None = None, *, allow_path: bool = True) -> tune.AdapterVersion | None:
        """``NAME``, ``NAME@vN``, a directory, ``none``, or ``auto`` (the active ``house``).

        Args:
            allow_path: accept a directory; False for references that come from a request, so
                that no request reaches the file system outside the registry.
        """
        ref = (ref or self.settings.adapter).strip()
        with leaf_errors():
            if ref == "auto":
                return self.registry.active(DEFAULT_ADAPTER_NAME) if DEFAULT_ADAPTER_NAME in self.registry.names() else None
            if not allow_path and ref != "none" and ref.split("@", 1)[0] not in self.registry.names():
                raise NotFoundError(f"no adapter named {ref!r}; GET /v1/adapters lists them, 'none' is the base model")
            return self.registry.resolve(ref)

    def names(self) -> list[str]:
        """The adapter names in the registry."""
        with leaf_errors():
            return self.registry.names()

    def versions(self, name: str | None = None) -> list[tune.AdapterVersion]:
        """Every finished adapter version (only those of ``name``, if given), by name, oldest first.

        Raises:
            NotFoundError: ``name`` has no versions; the message lists the names that exist.
            BadRequestError: ``name`` is not a valid adapter name.
        """
        with leaf_errors():
            names = [tune.parse_ref(name)[0]] if name is not None else self.registry.names()
            found = [version for each in names for version in self.registry.versions(each)]
            if name is not None and not found:
                raise tune.AdapterNotFoundError(f"no adapter named {name}; {self.registry.listing()}")
        return found

    def active(self, name: str) -> tune.AdapterVersion | None:
        """The version ``name`` stands for now, or None when none was activated."""
        with leaf_errors():
            return self.registry.active(tune.parse_ref(name)[0])

    def activate(self, ref: str) -> tuple[tune.AdapterVersion | None, tune.AdapterVersion]:
        """Make ``NAME@vN`` the version that ``NAME`` stands for (``ask``, ``serve``, ``auto``).

        Returns:
            (the version active before, None if none was; the version active now).
        """
        with leaf_errors():
            name, number = tune.parse_ref(ref)
            if number is None:
                raise BadRequestError(f"name the version to activate as NAME@vN; {self.registry.listing(name)}")
            before = self.registry.active(name)
            return before, self.registry.activate(name, number)

    def rollback(self, name: str) -> tuple[tune.AdapterVersion | None, tune.AdapterVersion]:
        """Make active again the version of ``name`` that was active before the current one.

        Returns:
            (the version active before, the version active now).
        """
        with leaf_errors():
            name, number = tune.parse_ref(name)
            if number is not None:
                raise BadRequestError(f"rollback takes a NAME, not a version; to pick one, activate {name}@v{number}")
            before = self.registry.active(name)
            return before, self.registry.rollback(name)

    def check(
        self,
        paths: Sequence[str | Path],
        *,
        base_model: str | None = None,
        max_length: int | None = None,
        input_column: str | None = None,
        output_column: str | None = None,
    ) -> tune.CheckReport:
        """Validate house-style examples without training (``hybrid tune --check``).

        Lengths are counted in the base model's tokens with its tokenizer alone (the weights are
        never loaded); without the tokenizer they are estimated, and the report says why.

        Args:
            base_model: the base model whose tokenizer counts (default: ``settings.base_model``).
            max_length: the longest example, in tokens (default: ``settings.tune.max_length``).
        """
        spec = base_model or self.settings.base_model
        try:
            tokenizer, why_not = tune.load_tokenizer(
                spec, self.settings.models_dir, allow_download=self.settings.allow_download
            ), None
        except tune.TuneError as exc:
            tokenizer, why_not = None, str(exc)
        with leaf_errors():
            return tune.check_examples(
                paths,
                tokenizer=tokenizer,
                tokenizer_name=Path(spec).name if Path(spec).is_dir() else spec,
                why_no_tokenizer=why_not,
                max_tokens=max_length or self.settings.tune.max_length,
                input_column=input_column,
                output_column=output_column,
            )

    def evaluate(
        self,
        ref: str,
        examples_path: str | Path,
        *,
        base_model: str | None = None,
        max_examples: int = 8,
        max_new_tokens: int = 128,
        base: bool = True,
        input_column: str | None = None,
        output_column: str | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> tune.StyleReport:
        """Held-out loss and style score of adapter ``ref`` against its base model (``hybrid tune eval``).

        Args:
            ref: ``NAME``, ``NAME@vN``, a directory, or ``none`` (the base model alone).
            examples_path: held-out examples in any format ``hybrid tune`` reads.
            base_model: the base model (default: the one the adapter records, else
                ``settings.base_model``).
            max_examples, max_new_tokens, base: see ``tune.evaluate_adapter``.

        Raises:
            BadRequestError: the file is missing, a line of it cannot be read (the message
                names it), or no example is usable.
            NotFoundError: the adapter or the base model is missing.
        """
        version = self.resolve(ref)
        spec = base_model or (base_of(version) if version is not None else None)
        base_dir = self.base_model_dir(spec)
        with leaf_errors():
            examples, problems = tune.read_examples(examples_path, input_column=input_column, output_column=output_column)
            if problems:
                first = problems[0]
                raise tune.DataError(
                    f"{len(problems)} unusable lines in {examples_path} (first: line {first.line}: [{first.code}] "
                    f"{first.message}); fix them, or see them all with `hybrid tune --check {examples_path}`"
                )
            if not examples:
                raise tune.DataError(f"no examples in {examples_path}; pass a file of held-out house-style examples")
            report = tune.evaluate_adapter(
                version.path if version is not None else None,
                base_dir,
                examples,
                max_length=self.settings.tune.max_length,
                max_examples=max_examples,
                max_new_tokens=max_new_tokens,
                seed=self.settings.tune.seed,
                progress=progress,
                base=base,
            )
        report.adapter = version.ref if version is not None else None
        return report

    def tune(
        self,
        examples: Sequence[str | Path],
        *,
        name: str = DEFAULT_ADAPTER_NAME,
        base_model: str | None = None,
        eval_path: str | Path | None = None,
        force: bool = False,
        progress: Callable[[dict], None] | None = None,
        input_column: str | None = None,
        output_column: str | None = None,
        augment: Any = None,
        from_ref: str | None = None,
        resume: bool = False,
        **overrides: Any,
    ) -> tune.TuneOutcome:
        """Train a new adapter version ``NAME@vN`` on ``examples``; earlier versions stay.

        The new version becomes active unless it does worse than the active one on the held-out
        examples (``outcome.activated``, ``outcome.gate``; see `tune.tune`). Rank, learning rate,
        epochs and batch size that neither ``overrides`` nor the settings file set are chosen
        from the number of examples (``outcome.settings`` says which and why).

        Args:
            from_ref: continue from this adapter (``NAME`` or ``NAME@vN``), replaying examples
                it was trained on.
            resume: continue the newest interrupted run of ``name`` from its checkpoint.
            augment: what adds retrieved passages to each example (``hybrid.context.ContextAugment``),
                or None to train on the examples alone.
            overrides: TuneConfig fields (``epochs``, ``max_steps``, ``rank``...); ``None`` is ignored.
        """
        spec = base_model or self.settings.base_model
        base_dir = self.base_model_dir(spec)
        given = {k: v for k, v in overrides.items() if v is not None}
        with leaf_errors():
            config = dataclasses.replace(self.settings.tune, **given)
            return tune.tune(
                examples,
                name=name,
                registry=self.registry,
                base_model_dir=base_dir,
                base_model_spec=spec,
                config=config,
                eval_path=eval_path,
                force=force,
                input_column=input_column,
                output_column=output_column,
                progress=progress,
                augment=augment,
                given=set(given),  # with the settings that differ from the defaults (tune.tune)
                from_ref=from_ref,
                resume=resume,
            )

    def export(
        self,
        ref: str,
        out_dir: str | Path,
        *,
        merged: bool = True,
        force: bool = False,
        engine: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> tune.ExportResult:
        """Write adapter ``ref`` to ``out_dir``, and with ``merged`` a merged model in ``out_dir/merged``;
        with ``engine`` (vllm, llama.cpp, ollama) what that engine loads instead of the merged model.

        The merge uses the base model recorded in the version's meta.json (see ``tune.export_adapter``).

        Raises:
            BadRequestError: ``ref`` is ``none``, ``out_dir`` lies in the registry or is not
                empty (without ``force``).
        """
        version = self.resolve(ref)
        if version is None:
            raise BadRequestError("'none' is the base model alone; name the adapter to export (NAME or NAME@vN)")
        out = Path(out_dir).expanduser().resolve()
        registry_root = self.settings.adapters_dir.expanduser().resolve()
        if out == registry_root or registry_root in out.parents:
            raise BadRequestError(f"{out} is inside the adapter registry {registry_root}; export somewhere else")
        with leaf_errors():
            base_dir = self.base_model_dir(tune.recorded_base_model(version), progress) if merged or engine else None
            return tune.export_adapter(version, out, base_model_dir=base_dir, merged=merged, force=force, engine=engine,
                                       progress=progress)


def base_of(adapter: tune.AdapterVersion) -> str | None:
    """The base model an adapter was trained on: its recorded directory while that exists."""
    recorded = adapter.meta.base_model_dir
    if recorded and Path(recorded).is_dir():
        return recorded
    return adapter.meta.base_model
