"""Find the PDF files named by the user's paths."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from ingest.records import FileFailure


def find_pdfs(paths: Sequence[str | Path]) -> tuple[list[Path], list[FileFailure]]:
    """Expand files and folders into a sorted, de-duplicated list of absolute file paths.

    Folders are searched recursively for `*.pdf` in any letter case. A file named explicitly is
    kept whatever its extension, so the loader can say why it is not a PDF.

    Returns:
        (files, failures): failures are paths that do not exist or that cannot be listed.
    """
    files: dict[Path, None] = {}  # a dict keeps first-seen order and drops duplicates
    failures: list[FileFailure] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_file():
            files[path] = None
        elif path.is_dir():
            try:
                found = sorted(
                    p.resolve()
                    for p in path.rglob("*")
                    if p.suffix.lower() == ".pdf" and p.is_file()
                )
            except OSError as exc:
                failures.append(FileFailure(str(path), f"cannot list folder: {exc}"))
                continue
            files.update(dict.fromkeys(found))
        elif path.exists():
            failures.append(FileFailure(str(path), "not a regular file or folder"))
        else:
            failures.append(FileFailure(str(path), "no such file or directory"))
    return list(files), failures


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of a file's bytes: the identity of a document's content."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in blocks so large files need little memory.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_size(path: str | Path) -> int:
    """Size of a file in bytes; 0 if it cannot be read (the parse reports why later)."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
