"""Fixtures for the ingest tests: a fake embedder and a small corpus of generated PDFs.

These tests use no real model and run in seconds; the ones that load the embedded
all-MiniLM-L6-v2 are marked `slow`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_embedder import FakeEmbedder
from tests.support.pdfs import make_pdf

# Page-specific facts: each query below shares its rare words with exactly one page.
ENGINES = [
    "Maintenance overview. The operator keeps a logbook for every aircraft in the fleet and "
    "records inspections, parts and signatures.",
    "Engine findings. The left turbine blade fractured from metal fatigue after 4,200 cycles; "
    "the crack started at the blade root.",
    "Fuel system. The fuel pump filter was clogged with debris and was replaced by the crew.",
]
SUMMER = [
    "Summer operations. A heatwave grounded the gliders; the runway asphalt softened at "
    "41 degrees.",
    "Bird strike. A flock of geese hit the windshield during the climb out and cracked it.",
]
TRAINING = [
    "Recurrent simulator training covers stall recovery and upset prevention.",
    "Night currency. Pilots logged 120 hours of night flying with instrument approaches.",
]
SUMMER_NAME = "Rapport d'été 2024.pdf"  # a space, an apostrophe and a non-ASCII letter


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder of three PDFs, one nested with an upper-case extension."""
    root = tmp_path / "docs"
    make_pdf(root / "engines.pdf", ENGINES)
    make_pdf(root / SUMMER_NAME, SUMMER)
    make_pdf(root / "crew" / "sub" / "training.PDF", TRAINING)
    return root


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path: Path) -> Path | str:
    """An index location on each store: a directory, then a PostgreSQL URL (a real server)."""
    if request.param == "sqlite":
        return tmp_path / "index"
    return request.getfixturevalue("postgres_url")
