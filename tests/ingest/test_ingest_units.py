"""Config, records, the fake embedder, text loading and chunking, each on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest import Chunk, FileFailure, Hit, IngestConfig, IngestConfigError, IngestReport
from ingest.chunk import chunk_pages
from ingest.files import find_pdfs
from ingest.load import load_pdf, normalise_text
from tests.support.fake_embedder import FakeEmbedder
from tests.support.pdfs import make_pdf


def test_config_collects_every_problem_in_one_error():
    with pytest.raises(IngestConfigError) as info:
        IngestConfig(chunk_size=0, chunk_overlap=-1, batch_size=0)
    message = str(info.value)
    assert "chunk_size" in message and "chunk_overlap" in message and "batch_size" in message


def test_config_rejects_overlap_not_below_size():
    with pytest.raises(IngestConfigError, match=r"chunk_overlap \(200\) must be smaller"):
        IngestConfig(chunk_size=200, chunk_overlap=200)
    assert IngestConfig(chunk_size=200, chunk_overlap=199).chunk_overlap == 199


def test_config_rejects_bool_and_float():
    with pytest.raises(IngestConfigError):
        IngestConfig(chunk_size=True)  # type: ignore[arg-type]
    with pytest.raises(IngestConfigError):
        IngestConfig(batch_size=2.5)  # type: ignore[arg-type]


def test_report_and_hit_dicts_have_exactly_the_contract_keys():
    report = IngestReport(files_added=1, files_failed=[FileFailure("/x.pdf", "empty file")])
    assert list(report.to_dict()) == [
        "files_added", "files_updated", "files_unchanged", "files_removed",
        "files_failed", "pages", "chunks", "seconds", "warnings", "timings",
        "added", "updated", "removed",
    ]  # fmt: skip
    assert report.to_dict()["files_failed"] == [{"path": "/x.pdf", "error": "empty file"}]
    hit = Hit(source="/a.pdf", page=2, chunk_id="abc:p2:c0", score=0.5, text="t")
    assert hit.to_dict() == {
        "source": "/a.pdf", "page": 2, "chunk_id": "abc:p2:c0", "score": 0.5, "text": "t"
    }  # fmt: skip


def test_fake_embedder_is_deterministic_normalised_and_ranks():
    embedder = FakeEmbedder()
    texts = ["the turbine blade cracked", "geese hit the windshield", "turbine blades cracking"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(vectors, FakeEmbedder().embed(texts))
    query = embedder.embed(["turbine blade crack"])[0]
    scores = vectors @ query
    assert scores[0] > scores[1] and scores[2] > scores[1]


def test_normalise_text_joins_hyphenated_breaks_and_collapses_spaces():
    raw = "The inves-\ntigation   found\x00 a\t\tcrack.\n\n\n\nNext  paragraph. "
    assert normalise_text(raw) == "The investigation found a crack.\n\nNext paragraph."


def test_load_pdf_numbers_pages_from_one_and_skips_blank_pages(tmp_path: Path):
    path = make_pdf(tmp_path / "a.pdf", ["first page", "", "third page"])
    pages = load_pdf(path.read_bytes(), str(path))
    assert [(p.page, p.text) for p in pages] == [(1, "first page"), (3, "third page")]
    assert all(p.source == str(path) for p in pages)


def test_chunks_stay_inside_their_page_with_deterministic_ids(tmp_path: Path):
    words = " ".join(f"word{i}" for i in range(300))  # ~2,400 characters per page
    path = make_pdf(tmp_path / "long.pdf", [f"alpha {words}", f"beta {words}"])
    pages = load_pdf(path.read_bytes(), str(path))
    config = IngestConfig(chunk_size=300, chunk_overlap=50)
    chunks = chunk_pages(pages, "0123456789abcdef", config)
    text_of = {p.page: p.text for p in pages}
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.text in text_of[chunk.page]  # never text from two pages
        assert len(chunk.text) <= 300
        assert chunk.chunk_id.startswith(f"0123456789ab:p{chunk.page}:c")
    assert chunks == chunk_pages(pages, "0123456789abcdef", config)
    assert isinstance(chunks[0], Chunk)


def test_find_pdfs_recurses_sorts_dedupes_and_reports_missing(tmp_path: Path):
    for name in ["b.pdf", "A.PDF", "sub/c.Pdf", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    files, failures = find_pdfs([tmp_path, tmp_path / "b.pdf", tmp_path / "missing.pdf"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["A.PDF", "b.pdf", "sub/c.Pdf"]
    assert failures == [FileFailure(str(tmp_path / "missing.pdf"), "no such file or directory")]


def test_ingest_is_a_light_leaf_package():
    # Importing ingest must not pull in the product packages, nor torch (only a real
    # embedder needs it), so the chunker and store tests stay fast.
    code = (
        "import sys, ingest; "
        "print(sorted(m for m in ('hybrid', 'tune', 'serve', 'torch', "
        "'sentence_transformers') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
