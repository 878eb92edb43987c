"""Render Markdown files to simple text PDFs (the demo's corpus is the project's own docs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF

_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_MARKUP = re.compile(r"[*`]|^#+\s*|^>\s?", re.MULTILINE)


def _plain(line: str) -> str:
    line = _MARKUP.sub("", _LINK.sub(r"\1", line))
    # The PDF core fonts are latin-1: replace what they cannot draw.
    line = line.replace("\u2014", "-").replace("\u2013", "-").replace("\u2019", "'").replace("\u2192", "->")
    return line.encode("latin-1", "replace").decode("latin-1")


def render_markdown_pdfs(files: Sequence[Path], out_dir: Path, *, root: Path) -> list[Path]:
    """Write one PDF per Markdown file into ``out_dir``; headings become bold lines.

    Command transcripts are left out: ```` ```console ```` blocks (the generated ones, see
    .ci/docs) and blocks that open with a ``$ `` prompt. They are answers, warnings and
    listings that hybrid printed, not documentation: a corpus that held them would feed old
    answers back as evidence, and change with every run of the docs.

    Returns:
        The PDFs written, named after each file's path below ``root`` (``docs-concepts-x.pdf``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for md in files:
        pdf = FPDF(format="A4")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.add_page()
        lines = md.read_text(encoding="utf-8").splitlines()
        in_code = transcript = False
        for i, raw in enumerate(lines):
            if raw.strip().startswith("```"):
                in_code = not in_code
                following = lines[i + 1] if i + 1 < len(lines) else ""
                transcript = in_code and (raw.strip().startswith("```console") or following.startswith("$ "))
                continue
            if transcript:
                continue
            heading = raw.startswith("#") and not in_code
            pdf.set_font("Courier" if in_code else "Helvetica", "B" if heading else "", 12 if heading else 10)
            text = _plain(raw) if not in_code else raw.encode("latin-1", "replace").decode("latin-1")
            pdf.multi_cell(0, 5, text or " ", new_x="LMARGIN", new_y="NEXT")
        name = "-".join(md.resolve().relative_to(root).with_suffix("").parts) + ".pdf"
        pdf.output(str(out_dir / name))
        written.append(out_dir / name)
    return written
