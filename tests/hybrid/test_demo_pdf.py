"""The demo's corpus: the project's docs rendered to PDF, without their command transcripts."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfReader

from hybrid.demo_pdf import render_markdown_pdfs

PAGE = """# Retrain the adapter

Run the check before training.

```console generated
$ hybrid tune --check examples.jsonl
65 usable examples: ok (checked in 0.1 s)
```

```toml
[tune]
epochs = 3
```

```
$ hybrid tune --check bitext.csv
- only 299 examples: below about 500
```

The closing line stays the same.
"""


def test_command_transcripts_are_left_out_and_other_code_kept(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "retrain.md").write_text(PAGE, encoding="utf-8")
    [pdf] = render_markdown_pdfs([docs / "retrain.md"], tmp_path / "corpus", root=tmp_path)
    assert pdf.name == "docs-retrain.pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Run the check before training." in text and "The closing line stays the same." in text
    assert "epochs = 3" in text  # a plain code block is documentation
    assert "usable examples" not in text and "hybrid tune --check" not in text
    assert "299 examples" not in text  # a hand-written transcript is output too
