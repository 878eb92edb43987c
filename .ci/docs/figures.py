"""The measured-figures page, docs/reference/figures.md, written from bench/figures.toml.

``make docs`` writes the page; tests/test_docs.py checks that the committed page is the written
one, that every link to it quotes a figure of its group, and that every figure appears on the
page that holds its full measurement.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "bench" / "figures.toml"
PAGE = ROOT / "docs" / "reference" / "figures.md"
# A link to a group of the page, from anywhere in README.md or docs/: [TEXT](...figures.md#GROUP)
LINK = re.compile(r"\[([^\]]+)\]\((?:[./]*|docs/)*(?:reference/)?figures\.md#([\w-]+)\)")


@dataclass(frozen=True)
class Quote:
    """One link to the figures page: where it is, its text and the group it points at."""

    file: str
    text: str
    group: str


def load(source: Path = SOURCE) -> list[dict]:
    """The groups of figures, as bench/figures.toml records them."""
    return tomllib.loads(source.read_text(encoding="utf-8"))["group"]


def render(groups: list[dict]) -> str:
    """The Markdown of the figures page."""
    out = [
        "# Measured figures",
        "",
        "The figures that the README and the other pages quote, each with the benchmark that",
        "measured it, in one place: a page quotes a figure as a link here. The full measurement",
        "(every row of the run, and what it means) is on the page named under each group. This page",
        "is written by `make docs` from `bench/figures.toml`; do not edit it by hand.",
        "",
        "Timings are from shared two-core machines: compare the ratios measured within one run, not",
        "seconds across runs.",
    ]
    for group in groups:
        page, _, anchor = group["source"].partition("#")
        title = _title(ROOT / page)
        link = (Path("..") / Path(page).relative_to("docs")).as_posix() + (f"#{anchor}" if anchor else "")
        out += [
            "",
            f"## {group['title']}",
            "",
            textwrap.fill(f"Measured on {group['measured']}. The full measurement: [{title}]({link}).", 95,
                          break_long_words=False, break_on_hyphens=False),
            "",
            "| figure | what it measures |",
            "|---|---|",
        ]
        out += [f"| **{f['value']}** | {f['what']} |" for f in group["figure"]]
        out += ["", "```", group["bench"], "```"]
    return "\n".join(out) + "\n"


def write_page() -> bool:
    """Write docs/reference/figures.md; whether it changed."""
    text = render(load())
    changed = not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text
    if changed:
        PAGE.write_text(text, encoding="utf-8")
    return changed


def quotes(files: list[Path]) -> list[Quote]:
    """Every link to the figures page in ``files``."""
    found = []
    for path in files:
        for match in LINK.finditer(path.read_text(encoding="utf-8")):
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append(Quote(str(name), match.group(1), match.group(2)))
    return found


def problems(groups: list[dict], files: list[Path]) -> list[str]:
    """Quotes that are not figures of their group, and figures missing from their source page."""
    values = {g["id"]: {f["value"] for f in g["figure"]} for g in groups}
    found = []
    for q in quotes(files):
        if q.group not in values:
            found.append(f"{q.file}: link to figures.md#{q.group}, a group bench/figures.toml does not have")
        elif q.text not in values[q.group]:
            found.append(f"{q.file}: quotes {q.text!r} from figures.md#{q.group}, which records {sorted(values[q.group])}")
    for group in groups:
        if _anchor(group["title"]) != group["id"]:
            found.append(f"bench/figures.toml: group {group['id']!r} must be titled so that its anchor is its id")
        source = (ROOT / group["source"].partition("#")[0]).read_text(encoding="utf-8")
        for figure in group["figure"]:
            missing = [v for v in figure.get("from", [figure["value"]]) if v not in source]
            if missing:
                found.append(f"{group['source']}: does not show {', '.join(missing)} (figure {figure['value']} of {group['id']})")
    return found


def _title(page: Path) -> str:
    """A page's first heading."""
    return next(line[2:].strip() for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("# "))


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
