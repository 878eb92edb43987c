"""One bad file never stops a run, never loses stored files, and is reported with its reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fpdf import FPDF

from ingest import Index, IngestConfig, IngestConfigError, IngestError, PdfReadFailure, ingest_paths
from ingest.load import load_pdf
from tests.support.pdfs import (
    make_encrypted_pdf,
    make_image_only_pdf,
    make_pdf,
    make_scanned_pdf,
    make_truncated_pdf,
)
from tests.support.tools import require_tesseract


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    make_truncated_pdf(root / "truncated.pdf")
    make_encrypted_pdf(root / "locked.pdf", "Secret budget figures.")
    make_image_only_pdf(root / "scan.pdf")
    (root / "random.pdf").write_bytes(os.urandom(4096))
    (root / "random header.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(4096))
    (root / "empty.pdf").write_bytes(b"")
    (root / "notes.pdf").write_text("just some notes, saved with the wrong name\n")
    return root


EXPECTED = {  # file name -> start of the reason
    "truncated.pdf": "truncated or corrupt",
    "locked.pdf": "encrypted;",
    "scan.pdf": "no text layer (image-only PDF? OCR is not enabled); run again with --ocr",
    "random.pdf": "not a PDF (starts with",
    "random header.pdf": "truncated or corrupt: no %%EOF marker",
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


def _pypdf_encrypted(path: Path, user_password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(path.with_suffix(".plain.pdf"), ["Encrypted with pypdf: the hangar keys."])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password="owner")
    with path.open("wb") as out:
        writer.write(out)
    plain.unlink()
    return path


def test_encryption_with_an_empty_password_is_read_and_a_real_password_is_reported(
    tmp_path: Path, index_dir, embedder
):
    open_to_all = _pypdf_encrypted(tmp_path / "pdfs" / "open.pdf", user_password="")
    locked = _pypdf_encrypted(tmp_path / "pdfs" / "locked.pdf", user_password="secret")
    report = ingest_paths([open_to_all, locked], index_dir, embedder)
    assert report.files_added == 1
    [failure] = report.files_failed
    assert failure.path == str(locked)
    assert failure.error.startswith("encrypted; it needs a password to open")
    with Index.open(index_dir, embedder) as index:
        assert Path(index.search("hangar keys")[0].source).name == "open.pdf"


def test_aes_encryption_without_its_package_is_reported_as_encrypted(tmp_path, monkeypatch):
    from pypdf.errors import DependencyError

    import ingest.load

    def aes(_stream):
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(ingest.load, "PdfReader", aes)
    path = make_pdf(tmp_path / "aes.pdf", ["x"])
    with pytest.raises(PdfReadFailure) as info:
        load_pdf(path.read_bytes(), str(path))
    assert info.value.reason.startswith("encrypted, and reading it needs a Python package")
    assert "pip install cryptography" in info.value.reason


def test_a_file_with_more_pages_than_max_pages_is_reported(tmp_path: Path, index_dir, embedder):
    big = make_pdf(tmp_path / "pdfs" / "big.pdf", [f"Page {n} of the manual." for n in range(1, 6)])
    small = make_pdf(tmp_path / "pdfs" / "small.pdf", ["A short memo about the geese."])
    report = ingest_paths([big, small], index_dir, embedder, IngestConfig(max_pages=4))
    assert report.files_added == 1
    [failure] = report.files_failed
    assert failure.path == str(big)
    assert failure.error.startswith("too many pages: 5, more than ingest.max_pages = 4;")
    report = ingest_paths([big], index_dir, embedder, IngestConfig(max_pages=0))  # no limit
    assert (report.files_added, report.pages) == (1, 5)


def test_max_pages_is_validated():
    with pytest.raises(IngestConfigError, match="max_pages must be a non-negative integer"):
        IngestConfig(max_pages=-1)
    with pytest.raises(IngestConfigError, match="ocr must be true or false"):
        IngestConfig(ocr="yes")


def test_scanned_pages_in_a_text_pdf_are_skipped_with_a_warning(tmp_path: Path, index_dir, embedder):
    path = make_scanned_pdf(
        tmp_path / "pdfs" / "mixed.pdf",
        ["A scanned page.", "Another scanned page."],
        text_pages=["The typed cover letter mentions the geese."],
    )
    report = ingest_paths([path], index_dir, embedder)
    assert (report.files_added, report.pages) == (1, 1)
    [warning] = report.warnings
    assert warning.startswith(f"{path}: 2 of 3 pages have no text layer, only images (scanned?)")
    assert "ingest it again with --ocr" in warning


def test_with_ocr_on_a_failing_engine_each_page_is_warned_and_the_rest_kept(
    tmp_path: Path, index_dir, embedder, monkeypatch
):
    import ingest.ocr

    monkeypatch.setattr(ingest.ocr, "TESSERACT", "false")  # /bin/false: runs, always fails
    mixed = make_scanned_pdf(tmp_path / "pdfs" / "mixed.pdf", ["Scanned."], ["Typed text."])
    scan = make_scanned_pdf(tmp_path / "pdfs" / "scan.pdf", ["Scanned only."])
    report = ingest_paths([mixed, scan], index_dir, embedder, IngestConfig(ocr=True))
    assert report.files_added == 1
    assert report.warnings == [
        f"{mixed}: page 2: OCR failed (tesseract failed: exit code 1); the page was skipped",
        f"{scan}: page 1: OCR failed (tesseract failed: exit code 1); the page was skipped",
    ]
    [failure] = report.files_failed
    assert failure.path == str(scan) and failure.error.startswith("no text found by OCR: its 1 page(s)")


def test_ocr_without_tesseract_fails_before_any_work(tmp_path: Path, index_dir, embedder, monkeypatch):
    import ingest.ocr

    monkeypatch.setattr(ingest.ocr, "TESSERACT", "no-such-ocr-engine")
    path = make_pdf(tmp_path / "a.pdf", ["text"])
    with pytest.raises(IngestError, match="apt install tesseract-ocr"):
        ingest_paths([path], index_dir, embedder, IngestConfig(ocr=True))
    assert not index_dir.exists()


def test_ocr_makes_scanned_pages_searchable(tmp_path: Path, index_dir, embedder):
    require_tesseract()
    path = make_scanned_pdf(
        tmp_path / "pdfs" / "scanned letter.pdf",
        ["The compressor blades of engine two showed heavy corrosion during the inspection."],
        text_pages=["Cover sheet of the maintenance file."],
    )
    report = ingest_paths([path], index_dir, embedder, IngestConfig(ocr=True))
    assert (report.files_added, report.pages, report.warnings) == (1, 2, [])
    with Index.open(index_dir, embedder) as index:
        hit = index.search("compressor blades corrosion")[0]
    assert (Path(hit.source).name, hit.page) == ("scanned letter.pdf", 2)
    assert "corrosion" in hit.text.lower()


def test_file_names_with_spaces_and_non_ascii_letters_work_end_to_end(
    tmp_path: Path, index_dir, embedder
):
    path = make_pdf(tmp_path / "日本 の 報告" / "café été.pdf", ["The tea ceremony budget rose."])
    report = ingest_paths([tmp_path / "日本 の 報告"], index_dir, embedder)
    assert report.files_added == 1
    with Index.open(index_dir, embedder) as index:
        hit = index.search("tea ceremony budget")[0]
    assert hit.source == str(path.resolve())
