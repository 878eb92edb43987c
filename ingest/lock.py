"""The writer lock of an index: one writer at a time, and readers never wait for it.

An exclusive advisory lock (`fcntl.flock`) on `<index>/ingest.lock`, taken without waiting. The
kernel drops it when the process holding it ends, however it ends (`kill -9` included), so a
crashed ingest never leaves an index locked. The file holds the holder's pid, host and start
time, for the message a refused writer prints; it is never deleted, because removing a lock
file races with the next process that opens it.

Searches never take the lock: SQLite's WAL mode lets them read the last committed state while a
writer works. Where there is no `fcntl` (Windows) the lock does nothing and SQLite's own write
lock still keeps writers apart: a second writer then waits for it and fails with "busy".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ingest.errors import IndexBusyError, IngestError
from ingest.manifest import MANIFEST_FILE
from ingest.vectors import FAISS_FILE, STAMP_FILE

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

LOCK_FILE = "ingest.lock"

# A temporary file (of the FAISS cache, its stamp or the manifest) untouched for this long, in
# seconds, was left by a killed process. A younger one may be a reader rebuilding the cache right
# now: writing a file updates its modification time, so a minute without a write means nobody
# is writing it.
STALE_TEMP_SECONDS = 60
_TEMP_PATTERNS = tuple(f"{name}.*.tmp" for name in (FAISS_FILE, STAMP_FILE, MANIFEST_FILE))


@contextlib.contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """Hold the writer lock of the index in `directory` for the duration of the block.

    On entry, removes temporary cache files that a killed writer left behind.

    Raises:
        IndexBusyError: another writer holds the lock (another process, or another `Index`
            object of this one); the message names its pid and start time.
        IngestError: the lock file cannot be created (e.g. a read-only index directory).
    """
    if fcntl is None:
        yield
        return
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise IngestError(
            f"cannot create the writer lock {path}: {exc.strerror or exc}; "
            "the index directory must be writable to ingest into it"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(_busy_message(directory, _read_holder(fd))) from None
        except OSError as exc:  # e.g. ENOLCK on a file system without locks
            log.warning("cannot lock %s (%s); only SQLite's write lock guards this run", path, exc)
            yield
            return
        _write_holder(fd)
        remove_stale_temp_files(directory)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # still locked, so no reader sees it half done
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def remove_stale_temp_files(directory: Path, min_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete temporary cache and manifest files older than `min_age` seconds; returns them.

    Call only while holding the writer lock, so no writer of this index is writing them.
    """
    removed = []
    cutoff = time.time() - min_age
    for pattern in _TEMP_PATTERNS:
        for tmp in directory.glob(pattern):
            try:
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed.append(tmp)
            except OSError as exc:  # gone meanwhile, or not ours to delete: harmless
                log.debug("cannot remove %s: %s", tmp, exc)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted ingest", len(removed))
    return removed


def _write_holder(fd: int) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _read_holder(fd: int) -> dict:
    # The holder may be between truncating and writing: then we know nothing, which is fine.
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _busy_message(directory: Path, holder: dict) -> str:
    details = []
    if "pid" in holder:
        details.append(f"pid {holder['pid']}")
    if holder.get("host") and holder["host"] != socket.gethostname():
        details.append(f"on {holder['host']}")
    started = holder.get("started")
    if isinstance(started, (int, float)):
        when = datetime.fromtimestamp(started)
        fmt = "%H:%M:%S" if when.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S"
        details.append(f"started {when.strftime(fmt)}")
    who = f" ({', '.join(details)})" if details else ""
    return (
        f"index {directory} is being written by another ingest{who}; "
        "wait for it to finish, or stop it, and run again"
    )
