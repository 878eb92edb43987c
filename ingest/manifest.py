"""`manifest.json`: a human-readable record of what built an index.

It mirrors the SQLite `meta` table (the source of truth) after every change, so people and
other tools can see the embedder and chunking without opening the database.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ingest.errors import IndexMismatchError, IndexNotFoundError, IngestError

MANIFEST_FILE = "manifest.json"
FORMAT = 1
_KEYS = ("format", "embedder", "dim", "chunker", "chunk_size", "chunk_overlap", "created", "updated")


def build_manifest(meta: dict[str, Any], documents: int, chunks: int) -> dict[str, Any]:
    """The manifest dict from the stored metadata and the current counts."""
    manifest = {key: meta.get(key) for key in _KEYS}
    manifest.update(documents=documents, chunks=chunks)
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=MANIFEST_FILE + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.replace(tmp, directory / MANIFEST_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read an index's manifest without loading an embedder.

    Lets a caller find which embedder an index needs (`manifest["embedder"]`) before opening it.

    Raises:
        IndexNotFoundError: no index at `path`.
        IngestError: the manifest is unreadable.
    """
    directory = Path(path).expanduser()
    file = directory / MANIFEST_FILE
    if not file.is_file():
        raise IndexNotFoundError(
            f"no index at {directory}: run `hybrid ingest PATH --index {directory}` first"
        )
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read {file}: {exc}") from exc


def initial_meta(embedder: str, dim: int) -> dict[str, Any]:
    """Metadata of a new, empty index."""
    stamp = now()
    return {
        "format": FORMAT,
        "embedder": embedder,
        "dim": dim,
        "chunker": None,  # set by the first ingest run that stores something
        "chunk_size": None,
        "chunk_overlap": None,
        "created": stamp,
        "updated": stamp,
        "generation": 0,
    }


def check_meta(path: Path, meta: dict[str, Any], embedder: str, dim: int) -> None:
    """Refuse an index of an unknown format or built with another embedder.

    Raises:
        IndexMismatchError: the embedder name or vector size differs.
        IngestError: unknown format.
    """
    if meta.get("format") != FORMAT:
        raise IngestError(
            f"{path} is not an index this version can read (format {meta.get('format')!r}, "
            f"expected {FORMAT}); re-ingest into a new --index"
        )
    if meta.get("embedder") != embedder or meta.get("dim") != dim:
        raise IndexMismatchError(
            f"index {path} was built with embedder {meta.get('embedder')!r} "
            f"(dim {meta.get('dim')}), not {embedder!r} (dim {dim}); "
            f"use --embedder {meta.get('embedder')} to use it, or a new --index DIR "
            f"for {embedder!r}"
        )


def now() -> str:
    """UTC time as ISO 8601 to the second, the format of all index timestamps."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
