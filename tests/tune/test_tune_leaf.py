"""tune is a leaf: it imports neither hybrid, ingest nor serve, and `import tune` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_tune_imports_no_other_project_package() -> None:
    modules = [p.stem for p in (ROOT / "tune").glob("*.py") if p.stem != "__init__"]
    loaded = imported_after("import tune\n" + "\n".join(f"import tune.{m}" for m in modules))
    assert not loaded & {"hybrid", "ingest", "serve"}


def test_reading_and_checking_needs_no_torch() -> None:
    loaded = imported_after("import tune; tune.check_examples; tune.AdapterRegistry")
    assert not loaded & {"torch", "transformers", "peft"}
    assert "torch" in imported_after("import tune; tune.Generator")
