"""Remove documents from an index by path (``hybrid docs remove``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ingest.config import IngestConfig
from ingest.postgres import PgIndex
from ingest.store import Index


def remove_documents(index: Index | PgIndex, paths: Sequence[str | Path]) -> list[str]:
    """Remove the stored documents at ``paths`` (files, or folders: everything below them).

    The files need not exist any more. One transaction: all or nothing.

    Returns:
        The sources removed, sorted; empty when nothing matched.

    Raises:
        IngestError: another process is writing to the index.
    """
    targets = [str(Path(p).expanduser().resolve()) for p in paths]  # as ingest records them
    manifest = index.manifest
    # Keep the index's recorded chunk settings: a removal must not rewrite them.
    config = IngestConfig(
        chunk_size=manifest.get("chunk_size") or IngestConfig.chunk_size,
        chunk_overlap=manifest.get("chunk_overlap") or IngestConfig.chunk_overlap,
    )
    with index.writer(config) as writer:
        removed = sorted(
            source
            for source in writer.sources()
            if any(source == t or source.startswith(t.rstrip(os.sep) + os.sep) for t in targets)
        )
        for source in removed:
            writer.remove(source)
    return removed
