"""Read the text of a PDF, page by page, or say precisely why it cannot be read."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Callable

import pypdf
from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

from ingest.config import IngestConfig
from ingest.errors import PdfReadFailure
from ingest.ocr import OcrError, find_tesseract, ocr_page
from ingest.records import Page

Warn = Callable[[str], None]

# The PDF spec allows the header anywhere in the first 1024 bytes and the %%EOF marker anywhere
# in the last 1024; real files use both liberties.
_HEADER_WINDOW = 1024
_EOF_WINDOW = 1024

# pypdf 7 bounds object sizes against malicious files; real SEC filings exceed its default of
# 100,000 array elements (seen: "Reached maximum array element count"), so allow 20x that.
_LIMITS = {"array_maximum_element_count": 2_000_000, "dictionary_maximum_element_count": 2_000_000}

_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_BLANK_LINES = re.compile(r"\n{3,}")

_NO_TEXT = "no text layer (image-only PDF? OCR is not enabled); run again with --ocr to read it"


def load_pdf(
    data: bytes, source: str, config: IngestConfig | None = None, *, warn: Warn | None = None
) -> list[Page]:
    """Extract the text of each page that has any.

    Pages without a text layer that hold images (scans) are read with Tesseract when
    `config.ocr` is set; otherwise they are left out with a warning, as are pages OCR fails on.

    Args:
        data: the file's bytes (the caller has already hashed them, so parsing the same bytes
            means the hash always describes what was indexed).
        source: the path recorded in each `Page` and used in error messages.
        config: `max_pages` and `ocr` are used; defaults to `IngestConfig()`.
        warn: called with each warning (a line that starts with `source`).

    Returns:
        One `Page` per page with text, 1-based page numbers; blank pages are left out.

    Raises:
        PdfReadFailure: empty, not a PDF, encrypted, truncated/corrupt, too many pages, or no
            text at all.
        IngestError: `config.ocr` is set, OCR is needed, and Tesseract is not installed.
    """
    config = config if config is not None else IngestConfig()
    _check_envelope(data, source)
    with _parser_limits():
        return _read_pages(data, source, config, warn or (lambda _line: None))


def _parser_limits() -> contextlib.AbstractContextManager:
    apply = getattr(pypdf, "apply_configuration", None)  # pypdf >= 7 only
    return apply(**_LIMITS) if apply is not None else contextlib.nullcontext()


def _read_pages(data: bytes, source: str, config: IngestConfig, warn: Warn) -> list[Page]:
    try:
        reader = PdfReader(io.BytesIO(data))
        _decrypt(reader, source)
        page_count = len(reader.pages)
        if config.max_pages and page_count > config.max_pages:
            raise PdfReadFailure(
                source,
                f"too many pages: {page_count}, more than ingest.max_pages = {config.max_pages}; "
                "split the file, or raise ingest.max_pages (0 = no limit)",
            )
        pages, scanned = [], []
        for number, page in enumerate(reader.pages, start=1):
            text = normalise_text(page.extract_text() or "")
            if text:
                pages.append(Page(source=source, page=number, text=text))
            elif _has_images(page):
                scanned.append((number, page))
        if scanned and config.ocr:
            pages = sorted(pages + _ocr(scanned, source, warn), key=lambda p: p.page)
    except PdfReadFailure:
        raise
    except FileNotDecryptedError as exc:
        raise PdfReadFailure(source, f"encrypted; cannot decrypt: {exc}") from exc
    except DependencyError as exc:  # AES needs the optional `cryptography` package
        raise PdfReadFailure(
            source,
            f"encrypted, and reading it needs a Python package that is not installed ({exc}); "
            "install it (pip install cryptography) or save an unprotected copy and ingest that",
        ) from exc
    except NotImplementedError as exc:  # e.g. an encryption algorithm pypdf lacks
        raise PdfReadFailure(source, f"uses an unsupported PDF feature: {exc}") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        # pypdf signals damaged files with all of these, depending on where parsing stops.
        raise PdfReadFailure(source, _corrupt_reason(data, exc)) from exc
    except (RecursionError, AttributeError, AssertionError, ZeroDivisionError) as exc:
        # Parser bugs on odd files: one file's problem, never the batch's.
        raise PdfReadFailure(source, f"could not be parsed ({type(exc).__name__}: {exc})") from exc
    if page_count == 0:
        raise PdfReadFailure(source, "truncated or corrupt: the PDF has no pages")
    if not pages:
        if not config.ocr:
            raise PdfReadFailure(source, _NO_TEXT)
        if scanned:
            raise PdfReadFailure(
                source,
                f"no text found by OCR: its {len(scanned)} page(s) are images and OCR read no "
                "text from them (see the warnings for pages where it failed)",
            )
        raise PdfReadFailure(
            source, "no text layer and no images to OCR (blank pages, or text drawn as shapes)"
        )
    if scanned and not config.ocr:
        warn(
            f"{source}: {len(scanned)} of {page_count} pages have no text layer, only images "
            "(scanned?); they were skipped. To read them: hybrid docs remove "
            f"{shlex.quote(source)}, then ingest it again with --ocr"
        )
    return pages


def _decrypt(reader: PdfReader, source: str) -> None:
    # Many PDFs are encrypted with an empty user password: anyone may open them, only editing
    # or printing is restricted. Those open with "" and are read like any other.
    if reader.is_encrypted and not reader.decrypt(""):
        raise PdfReadFailure(
            source,
            "encrypted; it needs a password to open. Save an unprotected copy "
            "(e.g. print to PDF) and ingest that",
        )


def _has_images(page: PageObject) -> bool:
    try:
        return len(page.images) > 0  # lists the image names; decodes nothing
    except Exception:  # an odd resource dictionary: treat the page as blank, as before
        return False


def _ocr(scanned: list[tuple[int, PageObject]], source: str, warn: Warn) -> list[Page]:
    tesseract = find_tesseract()
    pages = []
    for number, page in scanned:
        try:
            text = normalise_text(ocr_page(page, tesseract))
        except (OcrError, OSError) as exc:  # OSError: the temporary image cannot be written
            warn(f"{source}: page {number}: OCR failed ({exc}); the page was skipped")
            continue
        if text:
            pages.append(Page(source=source, page=number, text=text))
    return pages


def normalise_text(text: str) -> str:
    """Lightly clean extracted text without changing its words.

    Drops NUL characters, collapses runs of spaces, rejoins words hyphenated across a line
    break ("inves-\\ntigation" -> "investigation") and squeezes blank lines.
    """
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _check_envelope(data: bytes, source: str) -> None:
    # Cheap checks first give a clearer reason than pypdf's parser errors would.
    if not data:
        raise PdfReadFailure(source, "empty file (0 bytes)")
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise PdfReadFailure(source, f"not a PDF (starts with {data[:16]!r})")


def _corrupt_reason(data: bytes, exc: Exception) -> str:
    detail = f"{type(exc).__name__}: {exc}"
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        return f"truncated or corrupt: no %%EOF marker at the end (incomplete copy?); {detail}"
    return f"truncated or corrupt: {detail}"
