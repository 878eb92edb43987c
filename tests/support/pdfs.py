"""Make small PDFs for tests with fpdf2: text pages, encrypted, truncated, image-only."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF


def make_pdf(path: str | Path, pages: list[str]) -> Path:
    """Write a PDF with one page per string (Helvetica; text must be latin-1)."""
    pdf = _document(pages)
    return _write(pdf, path)


def make_encrypted_pdf(path: str | Path, text: str, password: str = "secret") -> Path:
    """Write a one-page PDF that needs `password` to open (RC4, readable without extras)."""
    pdf = _document([text])
    pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    return _write(pdf, path)


def make_truncated_pdf(path: str | Path) -> Path:
    """Write a valid multi-page PDF cut in half, like an interrupted download."""
    path = make_pdf(path, [f"Page {n} of a document that will be cut short." for n in range(8)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_image_only_pdf(path: str | Path) -> Path:
    """Write a PDF whose only page holds a filled rectangle and no text, like a scan."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_fill_color(40, 40, 40)
    pdf.rect(20, 20, 120, 80, style="F")
    return _write(pdf, path)


def _document(pages: list[str]) -> FPDF:
    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)  # one string, one page: a long text must not spill
    pdf.set_font("Helvetica", size=10)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 5, text)
    return pdf


def _write(pdf: FPDF, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
