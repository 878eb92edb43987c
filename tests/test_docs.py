"""The docs are produced, not typed: their example outputs come from real runs (`make docs`).

Fast tier: no machine path in any doc; every generated block parses and runs only commands the
generator can run; a stale block is told from one that differs only in its timings; the
measured-figures page is the one bench/figures.toml writes, and every figure quoted elsewhere
is one it records. Slow tier: the README tour's quick commands re-run against `make demo`'s
data (or, on a fresh clone, what the test builds the same way) print what the README shows,
and a deliberately stale block is reported.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


generate = _load("generate")
figures = _load("figures")
DOCS = generate.documents()
# The programs the generated blocks may call: each runs on a fresh clone after `make demo`.
PROGRAMS = {"source", "export", "hybrid", "curl", "cat", "kill", "cd", "mkdir", "echo", "printf", "cp", "rm", "head", "python"}

# The refusal block as the README showed it before `why:` was added to refusals (issue 13).
OLD_REFUSAL = """Some text.

```console generated
$ hybrid ask "What is the boiling point of mercury at sea level?"
The documents do not cover this question, so I cannot answer it from them.

route: refuse | grounded: yes | adapter: house@v1 | retrieve 7762 ms, generate 0 ms
```
"""
NEW_REFUSAL = """The documents do not cover this question, so I cannot answer it from them.

why: best passage scores 0.16, below the threshold 0.35
route: refuse | grounded: yes | adapter: house@v1 | retrieve 10929 ms, generate 0 ms"""


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doc_shows_a_machine_path(path: Path) -> None:
    found = generate.machine_paths(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} shows machine paths: {found[:3]}"


def test_the_path_check_finds_machine_paths() -> None:
    text = "ingesting into /tmp/docs-home/index\nsource: /work/shared/x.pdf\nHOME=/root/.hybrid\n~/hybrid/.demo is fine"
    assert len(generate.machine_paths(text)) == 3
    shown = generate.shown("into /repo/x/.demo/home and /home/ann/y\r\nbar 10%\rbar 100%", [Path("/repo/x")], None)
    assert "/repo/x" not in shown and shown.endswith("bar 100%")


@pytest.mark.parametrize("path", [p for p in DOCS if "```console generated" in p.read_text()],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_blocks_parse_and_run_known_programs(path: Path) -> None:
    blocks = generate.parse(path.read_text(encoding="utf-8"))
    assert blocks and all(block.commands for block in blocks)
    for block in blocks:
        for command in block.commands:
            program = command.text.split()[0]
            assert program in PROGRAMS or "=" in program, f"{path.name}: `{command.text}` calls {program}"
            assert not generate.machine_paths(command.text)


def test_every_block_of_the_readme_tour_is_produced() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme[readme.index("## A 5-minute tour") : readme.index("## Documentation")]
    fences = [line for line in tour.split("\n") if line.startswith("```")]
    openings = fences[::2]
    assert openings and all(line == generate.FENCE_OPEN for line in openings), openings


def test_parse_and_rewrite_round_trip() -> None:
    text = OLD_REFUSAL + "\n```console generated\n$ cat > f <<'EOF'\n$ not a command\nEOF\n$ echo a \\\n  b\na b\n```\n"
    blocks = generate.parse(text)
    assert [len(b.commands) for b in blocks] == [1, 2]
    assert blocks[1].commands[0].text.endswith("EOF") and blocks[1].commands[0].output == ""
    assert blocks[1].commands[1].output == "a b"
    assert generate.rewrite(text, blocks) == text
    blocks[0].commands[0].output = NEW_REFUSAL
    assert "why: best passage" in generate.rewrite(text, blocks)


def test_a_stale_block_is_told_from_a_slower_one() -> None:
    old = generate.parse(OLD_REFUSAL)[0].commands[0].output
    assert generate.stale(old, NEW_REFUSAL)  # the `why:` line is new: the block is stale
    slower = NEW_REFUSAL.replace("10929", "812").replace("0.16", "0.21")
    assert not generate.stale(NEW_REFUSAL, slower)  # timings and scores are not the shape


def test_a_stale_block_is_reported_with_its_diff() -> None:
    def run(blocks, select):
        return [[NEW_REFUSAL for _ in block.commands] for block in blocks]

    found = generate.check(ROOT / "fixture.md", text=OLD_REFUSAL, run=run)
    assert [s.command for s in found] == ['hybrid ask "What is the boiling point of mercury at sea level?"']
    assert "+why: best passage scores" in found[0].diff


def test_the_figures_page_is_the_written_one() -> None:
    assert figures.PAGE.read_text(encoding="utf-8") == figures.render(figures.load()), "run `make docs`"


def test_quoted_figures_are_recorded_and_on_their_source_pages() -> None:
    assert figures.quotes(DOCS), "no page quotes a figure through the figures page"
    assert figures.problems(figures.load(), DOCS) == []


def test_a_figure_quoted_wrong_is_found(tmp_path: Path) -> None:
    page = tmp_path / "troubleshooting.md"
    page.write_text("decodes [2x](reference/figures.md#fast-decoding) faster, [3.28x](figures.md#speed)\n")
    found = figures.problems(figures.load(), [page])
    assert len(found) == 2 and "'2x'" in found[0] and "#speed" in found[1]


@pytest.fixture(scope="module")
def tour_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tour runs: the checkout after `make demo`, else a folder holding what the
    tour reads (the docs' corpus ingested, a house adapter), built here in about two minutes:
    a fresh clone in CI runs this test instead of skipping it."""
    if (ROOT / ".demo" / "home" / "adapters" / "house").is_dir():
        return ROOT
    root = tmp_path_factory.mktemp("tour")
    (root / ".venv").symlink_to(ROOT / ".venv")
    # Two training steps: the listings show the adapter's figures, masked in the comparison.
    built = subprocess.run(
        [sys.executable, "-m", "hybrid.demo", "--workdir", str(root / ".demo"), "--setup-only",
         "--max-steps", "2", "--epochs", "1"],
        cwd=ROOT, env=generate.session_env(), capture_output=True, text=True, timeout=900,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    return root


@pytest.mark.slow
def test_the_readme_tour_prints_what_the_readme_shows(tour_root: Path) -> None:
    """The tour's quick commands, re-run on `make demo`'s data, match the README up to timings;
    the same run reports the README with its refusal block made stale (the `why:` line gone).
    """
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\nwhy: " in readme
    stale_readme = "\n".join(line for line in readme.split("\n") if not line.startswith("why: "))
    started = time.perf_counter()
    run = functools.partial(generate.run_blocks, root=tour_root)
    found = generate.check(ROOT / "README.md", text=stale_readme, cheap=True, run=run)
    print(f"README tour, quick commands: {time.perf_counter() - started:.0f} s")
    assert [s.command for s in found] == ['hybrid ask "What is the boiling point of mercury at sea level?"'], (
        "\n\n".join(f"$ {s.command}\n{s.diff}" for s in found) + "\n\nrun `make docs`"
    )
    assert "+why: best passage scores" in found[0].diff
