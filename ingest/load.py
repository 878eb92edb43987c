"""Read the text of a PDF, page by page, or say precisely why it cannot be read."""

from __future__ import annotations

import io
import re

import contextlib

import pypdf
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

from ingest.errors import PdfReadFailure
from ingest.records import Page

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


def load_pdf(data: bytes, source: str) -> list[Page]:
    """Extract the text of each page that has any.

    Args:
        data: the file's bytes (the caller has already hashed them, so parsing the same bytes
            means the hash always describes what was indexed).
        source: the path recorded in each `Page` and used in error messages.

    Returns:
        One `Page` per page with text, 1-based page numbers; blank pages are left out.

    Raises:
        PdfReadFailure: empty, not a PDF, encrypted, truncated/corrupt, or no text at all.
    """
    _check_envelope(data, source)
    with _parser_limits():
        return _read_pages(data, source)


def _parser_limits() -> contextlib.AbstractContextManager:
    apply = getattr(pypdf, "apply_configuration", None)  # pypdf >= 7 only
    return apply(**_LIMITS) if apply is not None else contextlib.nullcontext()


def _read_pages(data: bytes, source: str) -> list[Page]:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfReadFailure(
                source,
                "encrypted; it needs a password to open. Save an unprotected copy "
                "(e.g. print to PDF) and ingest that",
            )
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            text = normalise_text(page.extract_text() or "")
            if text:
                pages.append(Page(source=source, page=number, text=text))
        page_count = len(reader.pages)
    except PdfReadFailure:
        raise
    except FileNotDecryptedError as exc:
        raise PdfReadFailure(source, f"encrypted; cannot decrypt: {exc}") from exc
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
        raise PdfReadFailure(source, "no text layer (image-only PDF? OCR is not enabled)")
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
