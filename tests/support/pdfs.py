"""Make small PDFs for tests with fpdf2: text pages, encrypted, truncated, scanned (image-only)."""

from __future__ import annotations

from collections.abc import Sequence
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


def make_aes_encrypted_pdf(
    path: str | Path, pages: list[str], user_password: str = "", algorithm: str = "AES-256"
) -> Path:
    """Write a PDF encrypted with AES by pypdf (needs `cryptography` to write and to read).

    The default empty user password is how corporate PDFs usually come: anyone may open them,
    only the owner password (here "owner") may edit or print.
    """
    from pypdf import PdfReader, PdfWriter

    path = Path(path)
    plain = make_pdf(path.with_name(path.name + ".plain"), pages)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    with path.open("wb") as out:
        writer.write(out)
    plain.unlink()
    return path


def make_truncated_pdf(path: str | Path) -> Path:
    """Write a valid multi-page PDF cut in half, like an interrupted download."""
    path = make_pdf(path, [f"Page {n} of a document that will be cut short." for n in range(8)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_image_only_pdf(path: str | Path) -> Path:
    """Write a one-page scan: the page is an image of text, and there is no text layer."""
    return make_scanned_pdf(path, ["Scanned page"])


def make_scanned_pdf(path: str | Path, pages: Sequence[str], text_pages: Sequence[str] = ()) -> Path:
    """Write `text_pages` as ordinary text pages, then `pages` as images of their text (scans).

    The images are drawn large and sharp (about 40 px letters), so Tesseract reads them back.
    """
    pdf = _document(list(text_pages))
    for text in pages:
        pdf.add_page()
        image = _text_image(text)
        pdf.image(image, x=10, y=10, w=pdf.epw)
    return _write(pdf, path)


def _text_image(text: str, width: int = 1200, size: int = 40):
    from PIL import Image, ImageDraw, ImageFont  # Pillow comes with fpdf2

    font = ImageFont.load_default(size=size)
    lines, line = [], ""
    for word in text.split():  # wrap to the image width
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width - 2 * size:
            lines.append(line)
            candidate = word
        line = candidate
    lines.append(line)
    image = Image.new("L", (width, (len(lines) + 1) * int(size * 1.5)), color=255)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((size, size // 2 + n * int(size * 1.5)), line, font=font, fill=0)
    return image


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
