"""Read scanned pages with the local Tesseract OCR engine (the `tesseract` executable).

No Python dependency: each image of a page is written to a temporary file and read with
`tesseract IMAGE stdout`. A scanned page is a page whose only content is an image of the paper,
so the images pypdf extracts from it (`page.images`) are what OCR needs; nothing is rendered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.errors import IngestError

if TYPE_CHECKING:
    from pypdf import PageObject

TESSERACT = "tesseract"
# Seconds one image may take: a full page scanned at 300 dpi takes 1-10 s on one core.
_TIMEOUT = 300


class OcrError(IngestError):
    """One page could not be read with OCR (its images cannot be extracted, or Tesseract failed)."""

    code = "ocr"


def find_tesseract() -> str:
    """The path of the `tesseract` executable.

    Raises:
        IngestError: it is not installed (not on PATH); the message says how to install it.
    """
    path = shutil.which(TESSERACT)
    if path is None:
        raise IngestError(
            "OCR was asked for (--ocr, or ingest.ocr = true) but the `tesseract` executable is "
            "not on PATH; install Tesseract (Debian/Ubuntu: `sudo apt install tesseract-ocr`, "
            "Fedora: `sudo dnf install tesseract`, macOS: `brew install tesseract`) or run "
            "without --ocr"
        )
    return path


def ocr_page(page: PageObject, tesseract: str) -> str:
    """The text Tesseract reads in the images of `page`, in the order the page lists them.

    Raises:
        OcrError: an image cannot be extracted, or Tesseract fails on it.
    """
    texts = []
    with tempfile.TemporaryDirectory(prefix="hybrid-ocr-") as tmp:
        try:
            names = list(page.images.keys())
        except Exception as exc:  # pypdf raises many types on odd image resources
            raise OcrError(f"cannot list the page's images ({type(exc).__name__}: {exc})") from exc
        for n, name in enumerate(names):
            try:
                image = page.images[name]
            except Exception as exc:  # e.g. JBIG2 without jbig2dec, or a damaged stream
                raise OcrError(
                    f"cannot extract image {n + 1} ({type(exc).__name__}: {exc})"
                ) from exc
            file = Path(tmp) / f"image-{n}{Path(image.name).suffix or '.png'}"
            file.write_bytes(image.data)
            texts.append(_run(tesseract, file))
    return "\n".join(texts)


def _run(tesseract: str, image: Path) -> str:
    # One thread per process: Tesseract's OpenMP threads only contend on small machines, and
    # an ingest already keeps the cores busy (the Tesseract manual recommends this for batches).
    env = {**os.environ, "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}
    try:
        done = subprocess.run(
            [tesseract, str(image), "stdout"],
            capture_output=True,
            timeout=_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OcrError(f"tesseract took more than {_TIMEOUT} s on one image") from exc
    except OSError as exc:
        raise OcrError(f"cannot run {tesseract}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {done.returncode}"
        raise OcrError(f"tesseract failed: {detail}")
    return done.stdout.decode("utf-8", "replace")
