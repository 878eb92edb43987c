"""A real ingest in a process of its own, which the crash tests kill with SIGKILL.

    python -m tests.support.ingest_child MOMENT MARKER INDEX PATH...

Runs `ingest_paths` over PATH... into INDEX (a directory or a PostgreSQL URL) with the fake embedder and, at the moment named,
writes MARKER and sleeps until killed (the test waits for MARKER instead of guessing a delay):

- `parse`: reading the second file;
- `embed`: embedding, after at least one document was written to the open transaction;
- `commit`: right after the SQLite commit, before the FAISS cache is written;
- `faiss`: the new FAISS file written under its temporary name, not yet renamed;
- `never`: no stop; the run completes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import faiss

import ingest.load
import ingest.pipeline
from ingest import IngestConfig, ingest_paths, is_postgres
from ingest.postgres import PgWriter
from ingest.vectors import VectorIndex
from ingest.writer import IndexWriter
from tests.support.fake_embedder import FakeEmbedder

MOMENTS = ("parse", "embed", "commit", "faiss", "never")
_HOLD_SECONDS = 120  # far longer than any test waits; the test kills us well before


def main(moment: str, marker: Path, index: Path | str, paths: list[str]) -> None:
    def stop() -> None:
        marker.write_text("here")
        time.sleep(_HOLD_SECONDS)

    embedder = FakeEmbedder()
    puts = 0
    if moment == "parse":  # the files are small, so they are parsed in this process
        read_pages, loads = ingest.load._read_pages, 0

        def slow_read(*args, **kwargs):
            nonlocal loads
            loads += 1
            if loads == 2:
                stop()
            return read_pages(*args, **kwargs)

        ingest.load._read_pages = slow_read
    elif moment == "embed":
        writer = PgWriter if is_postgres(index) else IndexWriter
        put, embed = writer.put, embedder.embed

        def counted_put(self, *args, **kwargs):
            nonlocal puts
            puts += 1
            return put(self, *args, **kwargs)

        def slow_embed(texts):
            if puts:
                stop()
            return embed(texts)

        writer.put, embedder.embed = counted_put, slow_embed
        ingest.pipeline._PENDING_BATCHES = 1  # flush after each file's chunks
    elif moment == "commit":
        VectorIndex.save = lambda self, directory, generation: stop()
    elif moment == "faiss":
        write_index = faiss.write_index

        def slow_write(index, path):
            write_index(index, path)
            stop()

        faiss.write_index = slow_write
    # batch_size=1: one embedder call per chunk, so documents are written between calls.
    report = ingest_paths(paths, index, embedder, IngestConfig(batch_size=1))
    print(report.files_added, report.files_failed)


if __name__ == "__main__":
    moment, marker, index, *paths = sys.argv[1:]
    if moment not in MOMENTS:
        sys.exit(f"unknown moment {moment!r}; one of {', '.join(MOMENTS)}")
    main(moment, Path(marker), index if is_postgres(index) else Path(index), paths)
