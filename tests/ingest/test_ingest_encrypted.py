"""AES-encrypted PDFs: open to all (empty user password) are ingested; locked ones are reported.

pypdf needs the `cryptography` package for AES (the `pypdf[crypto]` dependency); RC4 files and
the case where that package is missing are in test_ingest_bad_files.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader

from ingest import Index, ingest_paths
from tests.support.pdfs import make_aes_encrypted_pdf, make_pdf

MEMO = [
    "Internal memo. The facilities team reviewed the building access logs for the quarter.",
    "The hangar door actuator failed twice in March; the vendor replaced the hydraulic seal.",
]


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128"])
def test_an_aes_pdf_anyone_may_open_is_ingested_and_found(tmp_path: Path, index_dir, embedder, algorithm):
    path = make_aes_encrypted_pdf(tmp_path / "pdfs" / "memo.pdf", MEMO, algorithm=algorithm)
    encrypt = PdfReader(path).trailer["/Encrypt"]
    assert encrypt["/V"] == (5 if algorithm == "AES-256" else 4)  # really AES, not RC4
    report = ingest_paths([path], index_dir, embedder)
    assert (report.files_added, report.pages, report.files_failed) == (1, 2, [])
    with Index.open(index_dir, embedder) as index:
        hit = index.search("hangar door actuator hydraulic seal")[0]
    assert (hit.source, hit.page) == (str(path.resolve()), 2)
    assert "hydraulic seal" in hit.text


def test_an_aes_pdf_that_needs_a_password_is_reported_and_the_rest_ingested(
    tmp_path: Path, index_dir, embedder
):
    locked = make_aes_encrypted_pdf(tmp_path / "pdfs" / "locked.pdf", MEMO, user_password="secret")
    plain = make_pdf(tmp_path / "pdfs" / "plain.pdf", ["The canteen menu changes on Mondays."])
    report = ingest_paths([tmp_path / "pdfs"], index_dir, embedder)
    assert report.files_added == 1
    [failure] = report.files_failed
    assert failure.path == str(locked)
    assert failure.error.startswith("encrypted; it needs a password to open. Save an unprotected copy")
    with Index.open(index_dir, embedder) as index:
        assert [Path(d["source"]).name for d in index.documents()] == [plain.name]
        assert all("hydraulic" not in h.text for h in index.search("hangar door actuator", k=5))
