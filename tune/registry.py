"""Versioned adapters on disk: ``root/NAME/vN/`` (adapter files + meta.json), ``root/NAME/active.json``.

Names are validated against `ADAPTER_NAME_RE` before they touch a path, so a reference can never
reach outside the registry root. Earlier versions are never overwritten.

active.json is ``{"version": N, "activated": ISO time, "history": [{"version": M, "activated": ...}]}``:
the active version, and the versions that were active before it, most recent last (what
`AdapterRegistry.rollback` returns to). Files written before the history existed hold only
``{"version": N}`` and still work; a rollback then goes to the next lower version number.

Where active.json lives is the registry's ``activation`` (``ActivationStore``): a file beside the
versions by default; servers that share one PostgreSQL store keep it in the database instead
(``hybrid.adapters``), so an activation through one server is what every other one uses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from tune.errors import AdapterNotFoundError, InvalidAdapterNameError, TuneError

ADAPTER_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(ADAPTER_NAME_RE)
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
_REF = re.compile(r"^(?P<name>[^@]+)@v(?P<version>[0-9]+)$")
META_FILE = "meta.json"
ACTIVE_FILE = "active.json"
ADAPTER_CONFIG = "adapter_config.json"  # written by PEFT; marks a directory as an adapter
# Earlier activations kept in active.json: plenty to undo with, and the file stays small.
HISTORY_LIMIT = 50
# The layout of meta.json that AdapterMeta writes. Files without a "schema" key (0) were
# written before it was recorded; they hold the same keys, some of them missing.
META_SCHEMA = 1


@dataclass
class AdapterMeta:
    """What produced an adapter version and how it did: its meta.json.

    Written once when the version is finished (``AdapterRegistry.finalize``), read by
    ``hybrid adapters show``, the server's model list, export, and a later ``--from``. Keys a
    newer hybrid wrote and this one does not know are kept in ``extra`` and written back.
    """

    name: str | None = None
    version: int | None = None
    base_model: str | None = None  # the spec the user gave (a name or a directory)
    base_model_dir: str | None = None  # the local directory it resolved to
    data_files: list[str] = field(default_factory=list)
    data_sha256: str | None = None
    examples: int | None = None  # training examples used
    skipped_too_long: int = 0
    eval_file: str | None = None
    eval_sha256: str | None = None
    eval_examples: int = 0
    held_out_from_training: int = 0
    parent: str | None = None  # NAME@vN the run continued from
    lineage: list[str] = field(default_factory=list)  # every version it descends from, oldest first
    replayed: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    settings: list[str] = field(default_factory=list)  # each chosen hyperparameter and why
    losses: dict[str, float | None] = field(default_factory=dict)  # train_loss, eval_loss, base_eval_loss
    gate: dict[str, Any] | None = None
    steps: int | None = None
    epochs: float | None = None
    tokens: int | None = None
    seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    created: str | None = None  # ISO time, UTC
    tune_version: str | None = None
    context: dict[str, Any] | None = None  # trained with retrieved passages: how they were paired
    schema: int = META_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> AdapterMeta:
        """The record of a meta.json's contents, from any schema (missing keys take their defaults)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {key: value for key, value in data.items() if key in known and value is not None}
        values.setdefault("schema", 0)
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON of meta.json (and of ``hybrid adapters show --json``'s ``meta``)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**body, **self.extra}

    @property
    def recorded(self) -> bool:
        """Whether a training run wrote this (an adapter folder without meta.json has none)."""
        return self.name is not None or self.created is not None


@dataclass(frozen=True)
class AdapterVersion:
    """One trained adapter.

    Attributes:
        name: the adapter name (a directory's own name for adapters outside the registry).
        version: N of ``NAME@vN``; 0 for an adapter given as a directory path.
        path: the directory holding adapter_config.json and the weights.
        meta: its meta.json (base model, data hash, hyperparameters, losses...).
    """

    name: str
    version: int
    path: Path
    meta: AdapterMeta = field(default_factory=AdapterMeta, compare=False, hash=False)

    @property
    def ref(self) -> str:
        """``NAME@vN``; for an adapter given as a directory, that directory (so it resolves back)."""
        return f"{self.name}@v{self.version}" if self.version > 0 else str(self.path)


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid adapter name.

    Raises:
        InvalidAdapterNameError: the name is empty, too long, or has characters other than
            letters, digits, _ . - (a `TuneError`).
    """
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InvalidAdapterNameError(
            f"invalid adapter name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``NAME`` or ``NAME@vN`` into ``(NAME, N)``; N is None for a bare name.

    Raises:
        InvalidAdapterNameError: the name part is not a valid adapter name, or the version part
            is not ``vN`` (N from 1).
    """
    if not isinstance(ref, str):
        return validate_name(ref), None  # raises: not a name
    text = ref.strip()
    if match := _REF.match(text):
        number = int(match.group("version"))
        if number < 1:
            raise InvalidAdapterNameError(f"invalid adapter version in {ref!r}: versions are numbered from v1")
        return validate_name(match.group("name")), number
    if "@" in text:
        raise InvalidAdapterNameError(f"invalid adapter reference {ref!r}: use NAME or NAME@vN (for example house@v2)")
    return validate_name(text), None


class ActivationStore(Protocol):
    """Where each adapter name's activation state (active.json's content) is kept."""

    def read(self, name: str) -> dict[str, Any]:
        """The state of ``name``; empty when it was never activated."""
        ...

    def write(self, name: str, state: dict[str, Any]) -> None:
        """Replace the state of ``name`` at once (a reader sees the old state or the new one)."""
        ...


class ActiveFiles:
    """The default ``ActivationStore``: ``root/NAME/active.json``, each write atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> dict[str, Any]:
        pointer = self.root / validate_name(name) / ACTIVE_FILE
        return _read_json(pointer) if pointer.is_file() else {}

    def write(self, name: str, state: dict[str, Any]) -> None:
        _write_json(self.root / validate_name(name) / ACTIVE_FILE, state)


class FirstOf:
    """An ``ActivationStore`` that writes to ``primary`` and reads it first, then ``fallback`` for
    a name ``primary`` has never seen (the files from before a move to a shared store)."""

    def __init__(self, primary: ActivationStore, fallback: ActivationStore) -> None:
        self.primary, self.fallback = primary, fallback

    def read(self, name: str) -> dict[str, Any]:
        return self.primary.read(name) or self.fallback.read(name)

    def write(self, name: str, state: dict[str, Any]) -> None:
        self.primary.write(name, state)


class AdapterRegistry:
    """The adapters under one root directory (normally ``HYBRID_HOME/adapters``).

    Args:
        activation: where the active versions are kept [default: active.json files under ``root``].
    """

    def __init__(self, root: str | Path, activation: ActivationStore | None = None) -> None:
        self.root = Path(root)
        self.activation = activation if activation is not None else ActiveFiles(self.root)

    def names(self) -> list[str]:
        """Adapter names with at least one finished version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _NAME.match(p.name) and self.versions(p.name))

    def versions(self, name: str) -> list[AdapterVersion]:
        """Finished versions of ``name`` (those with meta.json), oldest first."""
        folder = self.root / validate_name(name)
        if not folder.is_dir():
            return []
        found = []
        for child in folder.iterdir():
            match = _VERSION_DIR.match(child.name)
            if match and (child / META_FILE).is_file():
                found.append(AdapterVersion(name, int(match.group(1)), child, AdapterMeta.read(_read_json(child / META_FILE))))
        return sorted(found, key=lambda v: v.version)

    def active(self, name: str) -> AdapterVersion | None:
        """The version ``NAME`` stands for, or None when none was activated."""
        version = self._state(name).get("version")
        if version is None:
            return None
        return next((v for v in self.versions(name) if v.version == version), None)

    def resolve(self, ref: str) -> AdapterVersion | None:
        """The adapter a reference names: ``none``, ``NAME``, ``NAME@vN`` or a directory path.

        Returns:
            None for ``none`` (the base model alone).

        Raises:
            AdapterNotFoundError: nothing matches; the message lists the adapters that exist.
        """
        ref = ref.strip()
        if not ref:
            raise AdapterNotFoundError(
                f"empty adapter reference; use NAME, NAME@vN, a directory or none. {self.listing()}"
            )
        if ref.lower() == "none":
            return None
        match = _REF.match(ref)
        if match and _NAME.match(match.group("name")):
            name, number = match.group("name"), int(match.group("version"))
            found = next((v for v in self.versions(name) if v.version == number), None)
            if found is None:
                raise AdapterNotFoundError(f"no adapter version {ref}; {self.listing(name)}")
            return found
        if _NAME.match(ref) and self.versions(ref):
            active = self.active(ref)
            if active is None:
                raise AdapterNotFoundError(f"adapter {ref} has no active version; use NAME@vN. {self.listing(ref)}")
            return active
        path = Path(ref).expanduser()
        if (path / ADAPTER_CONFIG).is_file():
            meta = AdapterMeta.read(_read_json(path / META_FILE)) if (path / META_FILE).is_file() else AdapterMeta()
            return AdapterVersion(path.resolve().name, 0, path.resolve(), meta)
        raise AdapterNotFoundError(
            f"no adapter {ref!r} (not a name in {self.root}, nor a directory with {ADAPTER_CONFIG}); {self.listing()}"
        )

    def create_version(self, name: str) -> tuple[int, Path]:
        """Reserve the next version number of ``name`` and create its empty directory.

        Safe against concurrent runs: ``mkdir`` fails when another run took the number first,
        and the next one is tried.
        """
        folder = self.root / validate_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_DIR.match(p.name))]
        number = max(taken, default=0) + 1
        while True:
            path = folder / f"v{number}"
            try:
                path.mkdir()
            except FileExistsError:
                number += 1
                continue
            return number, path

    def finalize(self, name: str, version: int, meta: AdapterMeta | Mapping[str, Any], *, activate: bool = True) -> AdapterVersion:
        """Write meta.json (which marks the version finished) and, by default, activate it."""
        path = self.root / validate_name(name) / f"v{version}"
        if not (path / ADAPTER_CONFIG).is_file():
            raise TuneError(f"{path} holds no trained adapter ({ADAPTER_CONFIG} missing); train into it first")
        record = meta if isinstance(meta, AdapterMeta) else AdapterMeta.read({"schema": META_SCHEMA, **meta})
        _write_json(path / META_FILE, record.to_dict())
        return self.activate(name, version) if activate else AdapterVersion(name, version, path, record)

    def activate(self, name: str, version: int) -> AdapterVersion:
        """Make ``NAME`` stand for ``NAME@vN``; the version it replaces goes onto the history.

        Activating the version that is already active changes nothing.

        Raises:
            AdapterNotFoundError: no finished version N of that name.
        """
        found = self._version(name, version)
        state = self._state(name)
        current = state.get("version")
        if current == version:
            return found
        history = _history(state)
        if isinstance(current, int):
            history.append({"version": current, "activated": state.get("activated")})
        self._write_state(name, version, history)
        return found

    def history(self, name: str) -> list[int]:
        """The versions that were active before the current one, most recent last.

        Empty for an adapter activated only once, and for an active.json written before the
        history was kept.
        """
        return [entry["version"] for entry in _history(self._state(name))]

    def rollback(self, name: str) -> AdapterVersion:
        """Make active again the version that was active before the current one.

        Undoes the last activation: the current version is not put on the history, so a second
        rollback goes one step further back. Versions removed from disk since are skipped.
        Without a recorded history, the highest version below the active one is used.

        Returns:
            The version that is active now.

        Raises:
            AdapterNotFoundError: the adapter does not exist, has no active version, or has no
                earlier version to go back to.
        """
        current = self.active(name)
        if current is None:
            if not self.versions(name):
                raise AdapterNotFoundError(f"no adapter named {name}; {self.listing()}")
            raise AdapterNotFoundError(
                f"adapter {name} has no active version, so there is nothing to roll back; "
                f"activate one with NAME@vN. {self.listing(name)}"
            )
        existing = {v.version: v for v in self.versions(name)}
        history = _history(self._state(name))
        while history:
            entry = history.pop()
            if entry["version"] in existing and entry["version"] != current.version:
                self._write_state(name, entry["version"], history)
                return existing[entry["version"]]
        earlier = [number for number in existing if number < current.version]
        if not earlier:
            raise AdapterNotFoundError(
                f"{current.ref} is the earliest version of {name} and no other was active before it; "
                f"nothing to roll back to. {self.listing(name)}"
            )
        self._write_state(name, max(earlier), [])
        return existing[max(earlier)]

    def _version(self, name: str, version: int) -> AdapterVersion:
        found = next((v for v in self.versions(name) if v.version == version), None)
        if found is None:
            raise AdapterNotFoundError(f"no adapter version {name}@v{version}; {self.listing(name)}")
        return found

    def _state(self, name: str) -> dict[str, Any]:
        state = self.activation.read(validate_name(name))
        return state if isinstance(state, dict) else {}

    def _write_state(self, name: str, version: int, history: list[dict[str, Any]]) -> None:
        # Read-modify-write without a lock: two activations at the same instant may drop one
        # history entry, never the active version itself (each write is atomic).
        state = {"version": version, "activated": _now(), "history": history[-HISTORY_LIMIT:]}
        self.activation.write(validate_name(name), state)

    def unfinished(self, name: str) -> list[tuple[int, Path]]:
        """Version directories of ``name`` without meta.json (a run in progress or interrupted), oldest first."""
        folder = self.root / validate_name(name)
        if not folder.is_dir():
            return []
        found = [
            (int(m.group(1)), child)
            for child in folder.iterdir()
            if (m := _VERSION_DIR.match(child.name)) and child.is_dir() and not (child / META_FILE).is_file()
        ]
        return sorted(found)

    def discard(self, name: str, version: int) -> None:
        """Remove an unfinished version's directory (after a failed run); finished ones stay."""
        path = self.root / validate_name(name) / f"v{int(version)}"
        if path.is_dir() and not (path / META_FILE).is_file():
            shutil.rmtree(path, ignore_errors=True)

    def listing(self, name: str | None = None) -> str:
        """One line for error messages: the versions of ``name`` (and the active one), or every name."""
        if name is not None and (versions := self.versions(name)):
            active = self.active(name)
            return f"versions of {name}: {', '.join(v.ref for v in versions)}" + (
                f" (active: {active.ref})" if active else ""
            )
        names = self.names()
        return f"adapters in {self.root}: {', '.join(names)}" if names else f"no adapters in {self.root} yet"


def _history(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed entries of active.json's history (anything else is ignored, not fatal)."""
    entries = state.get("history")
    if not isinstance(entries, list):
        return []
    return [
        {"version": e["version"], "activated": e.get("activated")}
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("version"), int) and not isinstance(e["version"], bool)
    ]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Write a sibling then rename: a reader never sees half a file, even with a run crashing.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
