"""One bad file never stops a run, never loses stored files, and is reported with its reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fpdf import FPDF

from ingest import Index, PdfReadFailure, ingest_paths
from ingest.load import load_pdf
from tests.support.pdfs import (
    make_encrypted_pdf,
    make_image_only_pdf,
    make_pdf,
    make_truncated_pdf,
)


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    make_truncated_pdf(root / "truncated.pdf")
    make_encrypted_pdf(root / "locked.pdf", "Secret budget figures.")
    make_image_only_pdf(root / "scan.pdf")
    (root / "random.pdf").write_bytes(os.urandom(4096))
    (root / "empty.pdf").write_bytes(b"")
    (root / "notes.pdf").write_text("just some notes, saved with the wrong name\n")
    return root


EXPECTED = {  # file name -> start of the reason
    "truncated.pdf": "truncated or corrupt",
    "locked.pdf": "encrypted;",
    "scan.pdf": "no text layer (image-only PDF? OCR is not enabled)",
    "random.pdf": "not a PDF (starts with",
    "empty.pdf": "empty file",
    "notes.pdf": "not a PDF (starts with b'just some notes",
}


def test_each_bad_file_is_reported_with_its_reason(corpus, bad_dir, index_dir, embedder):
    missing = corpus / "missing.pdf"
    report = ingest_paths([corpus, bad_dir, missing], index_dir, embedder)
    reasons = {Path(f.path).name: f.error for f in report.files_failed}
    assert reasons.pop("missing.pdf") == "no such file or directory"
    assert set(reasons) == set(EXPECTED)
    for name, start in EXPECTED.items():
        assert reasons[name].startswith(start), (name, reasons[name])
    assert report.files_added == 3  # the good files went in all the same
    with Index.open(index_dir, embedder) as index:
        assert len(index.documents()) == 3
        assert index.search("bird strike geese")[0].page == 2


def test_a_stored_file_that_turns_corrupt_keeps_its_last_good_version(
    corpus, index_dir, embedder
):
    ingest_paths([corpus], index_dir, embedder)
    engines = corpus / "engines.pdf"
    engines.write_bytes(engines.read_bytes()[:300])
    report = ingest_paths([corpus], index_dir, embedder)
    assert [Path(f.path).name for f in report.files_failed] == ["engines.pdf"]
    assert report.files_failed[0].error.startswith("truncated or corrupt")
    with Index.open(index_dir, embedder) as index:
        hit = index.search("turbine blade metal fatigue")[0]
        assert (Path(hit.source).name, hit.page) == ("engines.pdf", 2)


def test_pdf_with_only_an_owner_password_is_read(tmp_path: Path):
    # An empty user password means anyone may open it; only editing is restricted.
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 5, "Readable despite encryption.")
    path = tmp_path / "owner-only.pdf"
    pdf.output(str(path))
    pages = load_pdf(path.read_bytes(), str(path))
    assert pages[0].text == "Readable despite encryption."


def test_failure_names_the_file(tmp_path: Path):
    path = make_image_only_pdf(tmp_path / "scan.pdf")
    with pytest.raises(PdfReadFailure) as info:
        load_pdf(path.read_bytes(), str(path))
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_pdf_with_no_pages_fails_cleanly(tmp_path: Path):
    path = make_pdf(tmp_path / "one.pdf", ["x"])
    # A PDF that parses but has zero pages: an empty page tree.
    data = path.read_bytes().replace(b"/Count 1", b"/Count 0")
    data = data.replace(b"/Kids [3 0 R]", b"/Kids []")
    with pytest.raises(PdfReadFailure, match="no pages"):
        load_pdf(data, "zero.pdf")


def test_parser_limits_are_raised_for_large_real_filings() -> None:
    """Real SEC 10-Q files exceed pypdf 7's default 100,000-element array limit."""
    import pypdf

    from ingest.load import _LIMITS, _parser_limits

    if not hasattr(pypdf, "get_configuration"):
        return  # older pypdf has no such limit
    with _parser_limits():
        assert pypdf.get_configuration().array_maximum_element_count == _LIMITS["array_maximum_element_count"]
    assert pypdf.get_configuration().array_maximum_element_count < _LIMITS["array_maximum_element_count"]
