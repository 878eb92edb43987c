"""Produce the example outputs in README.md and docs/ from real runs: ``make docs``.

A fenced block opened with ```` ```console generated ```` holds commands, each on a line that
starts with ``$ `` (continued by a trailing backslash, or by a here-document up to its end
word), each followed by its output. This script runs every such command, in order, one bash
shell per Markdown file (so variables, ``export`` and background jobs carry from one block of a
file to the next), from the repository root, and writes the real output back into the block.

The commands run on data the repository makes: ``make demo``'s corpus (the project's own docs,
rendered to PDF), its index, its house-style examples and its trained adapter. Before running,
the demo's corpus and index are brought up to date with docs/ exactly as ``make demo`` does
(render, then an incremental ``hybrid ingest``), so the outputs are those a reader gets after
``make demo`` from a fresh clone.

Outputs are written with machine paths made neutral: the repository root becomes ``~/hybrid``
and ``$HOME`` becomes ``~``. ``hybrid serve`` runs on a free port, shown as 8000.

    .venv/bin/python .ci/docs/generate.py            # rewrite every generated block
    .venv/bin/python .ci/docs/generate.py --check    # re-run, compare, rewrite nothing (exit 1 if stale)
    .venv/bin/python .ci/docs/generate.py --check --cheap README.md
                                                 # only the commands that take seconds

``--check`` compares up to timings: numbers, hex ids and runs of spaces are masked first, so a
block is stale when its command's output changed shape or text, not when it ran faster.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE_OPEN = "```console generated"
SHOWN_ROOT = "~/hybrid"  # how the repository root appears in outputs
SHOWN_PORT = "8000"
# Folders a document's session starts without, so that its run is the first one (a tutorial's
# HYBRID_HOME); relative to the root.
FRESH = {
    "docs/tutorial/quickstart.md": [".demo/quickstart"],
    "docs/how-to/retrain.md": [".demo/retrain"],
    "docs/how-to/ingest.md": [".demo/reports", ".demo/reports-index", ".demo/reports-bad"],
    "docs/how-to/search.md": [".demo/search-index"],
}
# Commands that take seconds and change nothing a later command reads: `--check --cheap`
# (and the slow test) re-run only these. An `ask` is cheap when its committed answer is a
# refusal (no model is loaded for it).
CHEAP = re.compile(
    r"^(source |export |cd |[A-Z_]+=\S*$|hybrid (docs list|search|adapters (list|show))\b|hybrid tune --check\b"
    r"|hybrid ingest \.demo/corpus\b)"
)
# A background job is ready when its output says so (uvicorn's last line of start-up).
READY = re.compile(r"Uvicorn running on")
# Paths that exist only on the machine the docs were written on.
MACHINE_PATH = re.compile(r"(?<![\w.~])(/work/|/root\b|/tmp/|/var/folders/|/home/\w|/Users/\w|[A-Z]:\\Users\\)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A tqdm progress bar, and any text printed on its line after it.
_BAR = re.compile(r"^(?P<bar>(?P<name>[^|\n]*?):?\s+\d+%\|[^|]*\|[^\]]*\])(?P<rest>.*)$")


@dataclass
class Command:
    """One ``$`` command of a block and the output shown under it."""

    text: str  # as shown, without the "$ ", continuation lines kept
    output: str  # as shown (committed or freshly produced), no trailing newline

    @property
    def cheap(self) -> bool:
        first = self.text.splitlines()[0]
        if first.startswith("hybrid ask ") and "route: refuse" in self.output:
            return True
        return bool(CHEAP.match(first))


@dataclass
class Block:
    """A ```` ```console generated ```` block: the line span of its body and its commands."""

    first: int  # index of the first line after the opening fence
    last: int  # index of the closing fence
    commands: list[Command] = field(default_factory=list)


def parse(markdown: str) -> list[Block]:
    """The generated blocks of a Markdown text, in order.

    Raises:
        ValueError: a block is not closed, or holds output before its first command.
    """
    lines = markdown.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip() != FENCE_OPEN:
            i += 1
            continue
        start = i + 1
        end = next((j for j in range(start, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"line {i + 1}: generated block is not closed")
        blocks.append(Block(start, end, _commands(lines[start:end], start)))
        i = end + 1
    return blocks


def _commands(body: list[str], offset: int) -> list[Command]:
    commands: list[Command] = []
    outputs: list[list[str]] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.startswith("$ "):
            if not commands:
                raise ValueError(f"line {offset + i + 1}: output before the first `$ ` command")
            outputs[-1].append(line)
            i += 1
            continue
        text = [line[2:]]
        i += 1
        while text[-1].endswith("\\") and i < len(body):  # continued on the next line
            text.append(body[i])
            i += 1
        heredoc = _HEREDOC.search(text[0])
        if heredoc:  # the here-document is part of the command, up to its end word
            while i < len(body):
                text.append(body[i])
                i += 1
                if text[-1] == heredoc.group(2):
                    break
        commands.append(Command("\n".join(text), ""))
        outputs.append([])
    for command, lines in zip(commands, outputs):
        command.output = "\n".join(lines).rstrip("\n")
    return commands


def rewrite(markdown: str, blocks: list[Block]) -> str:
    """The Markdown with each block's body replaced by its commands and their outputs."""
    lines = markdown.split("\n")
    for block in reversed(blocks):  # from the end, so earlier line numbers stay valid
        body: list[str] = []
        for command in block.commands:
            body.append("$ " + command.text)
            if command.output:
                body.extend(command.output.split("\n"))
        lines[block.first : block.last] = body
    return "\n".join(lines)


def comparable(output: str) -> str:
    """An output up to timings: numbers, hex ids and runs of spaces masked; progress bars dropped."""
    text = re.sub(r"\b[0-9a-f]{8,}\b", "#", output)
    text = re.sub(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b", "D", text)
    text = re.sub(r"\d+(?:[.,:]\d+)*", "0", text)
    text = re.sub(r"[ \t]+", " ", text)
    return "\n".join(line.rstrip() for line in text.split("\n") if "%|" not in line).strip()


def stale(committed: str, fresh: str) -> bool:
    """Whether a committed output differs from a fresh one by more than its timings."""
    return comparable(committed) != comparable(fresh)


def machine_paths(text: str) -> list[str]:
    """The lines of ``text`` that hold a machine-specific path (``/work/...``, ``/tmp/...``, ...)."""
    return [line for line in text.split("\n") if MACHINE_PATH.search(line)]


def shown(raw: str, roots: Iterable[Path], port: int | None) -> str:
    """Terminal output as a reader sees it, with machine paths made neutral.

    Progress bars keep their last state (the text after the last carriage return of a line).
    """
    text = _ANSI.sub("", raw.replace("\r\n", "\n"))
    lines = [line.rstrip("\r").split("\r")[-1].rstrip() for line in text.split("\n")]
    text = "\n".join(_final_bars(lines)).strip("\n")
    for root in sorted({str(r) for r in roots}, key=len, reverse=True):
        text = text.replace(root, SHOWN_ROOT)
    home = os.path.expanduser("~")
    if home not in ("/", ""):
        text = re.sub(re.escape(home) + r"(?=/|\b)", "~", text)
    if port is not None:
        text = text.replace(str(port), SHOWN_PORT)
    return text


def _final_bars(lines: list[str]) -> list[str]:
    """Each progress bar once, in its last state and place, as a terminal leaves it.

    Captured, a bar redrawn with newlines (or with text printed right after it) becomes many
    lines; blank lines next to a bar are its redraws too.
    """
    out: list[str] = []
    bars: dict[str, int] = {}  # bar name -> its line in ``out``
    for i, line in enumerate(lines):
        match = _BAR.match(line)
        if match is None:
            near_bar = any(_BAR.match(x) for x in lines[max(i - 1, 0) : i + 2])
            if line or not near_bar:
                out.append(line)
            continue
        if match["name"] in bars:
            out[bars[match["name"]]] = None  # redrawn: the earlier state goes
        bars[match["name"]] = len(out)
        out.append(match["bar"])
        if match["rest"].strip():
            out.append(match["rest"].strip())
    return [line for line in out if line is not None]


class Shell:
    """One bash process that runs commands in turn; each command's output goes to its own file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.work = Path(tempfile.mkdtemp(prefix="hybrid-docs-"))
        self.port = _free_port()
        self.jobs: list[int] = []
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"], cwd=root, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,  # its own process group: close() ends what the session started
        )
        self.count = 0

    def run(self, command: str, timeout: float = 900) -> str:
        """Run one command as typed at a prompt; returns its stdout and stderr together."""
        self.count += 1
        out, done = self.work / f"{self.count}.out", self.work / f"{self.count}.rc"
        command = re.sub(rf"(127\.0\.0\.1:|localhost:|--port ){SHOWN_PORT}\b", rf"\g<1>{self.port}", command)
        background = command.rstrip().endswith("&") and not command.rstrip().endswith("&&")
        if command.startswith("hybrid serve") and "--port" not in command:
            command = command.replace("hybrid serve", f"hybrid serve --port {self.port}", 1)
        if background:
            script = f"{{ {command}\n}} > {out} 2>&1 < /dev/null\necho $! > {done}.pid\necho 0 > {done}\n"
        else:
            # `$?` of the next command must still be this command's status, as at a prompt.
            script = f"{{ {command}\n}} > {out} 2>&1 < /dev/null\n__rc=$?\necho $__rc > {done}\n(exit $__rc)\n"
        self.proc.stdin.write(script)
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"`{command}` ran longer than {timeout:.0f} s")
            time.sleep(0.2)
        if background:
            self.jobs.append(int(Path(f"{done}.pid").read_text()))
            self._wait_ready(out, self.jobs[-1], deadline)
        time.sleep(0.1)
        return out.read_text(errors="replace")

    def _wait_ready(self, out: Path, pid: int, deadline: float) -> None:
        while not READY.search(out.read_text(errors="replace")):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise RuntimeError(f"background job exited before it was ready:\n{out.read_text()}") from None
            if time.monotonic() > deadline:
                raise TimeoutError("background job was not ready in time")
            time.sleep(0.5)

    def close(self) -> None:
        for pid in self.jobs:  # the jobs this shell started, if a `kill %1` did not stop them
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        try:  # what the jobs left running (a server's background build of fast decoding)
            os.killpg(self.proc.pid, 15)
        except ProcessLookupError:
            pass
        shutil.rmtree(self.work, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_env() -> dict[str, str]:
    """A user's plain environment: no HYBRID_* settings, offline, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_") and k != "VIRTUAL_ENV"}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", NO_COLOR="1", TERM="dumb")
    return env


def run_blocks(
    blocks: list[Block],
    root: Path = ROOT,
    *,
    select: Callable[[Command], bool] = lambda c: True,
    progress: Callable[[str], None] = lambda m: None,
) -> list[list[str | None]]:
    """Run the selected commands of ``blocks`` in one shell; the outputs as shown, None where skipped."""
    shell = Shell(root, session_env())
    roots = {root, root.resolve(), ROOT, ROOT.resolve()}
    try:
        results: list[list[str | None]] = []
        for block in blocks:
            results.append([])
            for command in block.commands:
                if not select(command):
                    results[-1].append(None)
                    continue
                progress(f"$ {command.text.splitlines()[0]}")
                started = time.perf_counter()
                results[-1].append(shown(shell.run(command.text), roots, shell.port))
                progress(f"  ({time.perf_counter() - started:.1f} s)")
        return results
    finally:
        shell.close()


@dataclass
class Staleness:
    """A committed output that no longer matches its command's."""

    file: str
    command: str
    diff: str


def check(
    path: Path,
    *,
    text: str | None = None,
    cheap: bool = False,
    run: Callable[..., list[list[str | None]]] = run_blocks,
) -> list[Staleness]:
    """Re-run the generated blocks of one file (or of ``text``) and list the stale outputs."""
    blocks = parse(path.read_text(encoding="utf-8") if text is None else text)
    fresh = run(blocks, select=(lambda c: c.cheap) if cheap else (lambda c: True))
    found = []
    for block, outputs in zip(blocks, fresh):
        for command, output in zip(block.commands, outputs):
            if output is not None and stale(command.output, output):
                diff = "\n".join(difflib.unified_diff(
                    command.output.split("\n"), output.split("\n"), "committed", "fresh", lineterm=""))
                found.append(Staleness(str(path), command.text.splitlines()[0], diff))
    return found


def reset(path: Path) -> None:
    """Remove what an earlier run of ``path``'s commands left (its FRESH folders)."""
    for folder in FRESH.get(str(path.relative_to(ROOT)), []):
        shutil.rmtree(ROOT / folder, ignore_errors=True)


def generate(path: Path, progress: Callable[[str], None] = print) -> bool:
    """Rewrite one file's generated blocks from a real run; whether anything changed."""
    reset(path)
    text = path.read_text(encoding="utf-8")
    blocks = parse(text)
    outputs = run_blocks(blocks, progress=progress)
    for block, fresh in zip(blocks, outputs):
        for command, output in zip(block.commands, fresh):
            command.output = output or ""
    new = rewrite(text, blocks)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def documents() -> list[Path]:
    """README.md and every page of docs/, generated blocks or not."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def sync_demo(progress: Callable[[str], None] = print) -> None:
    """Bring ``make demo``'s corpus and index up to date with docs/, as ``make demo`` would.

    A page's PDF is replaced only when its content changed (the renderer stamps each PDF with
    its creation time), so the incremental ingest re-reads only the pages that did.

    Raises:
        SystemExit: ``make demo`` has not been run.
    """
    sys.path.insert(0, str(ROOT))
    from hybrid.config import Settings
    from hybrid.demo_pdf import render_markdown_pdfs

    corpus, home = ROOT / ".demo" / "corpus", ROOT / ".demo" / "home"
    if not (home / "adapters" / "house").is_dir():
        raise SystemExit("no trained demo: run `make demo` first (the docs' examples run on what it builds)")
    # `make demo` answers without fast decoding, so a reader's first `hybrid serve` builds it:
    # drop what an earlier run of these docs built, so the outputs show that first start.
    shutil.rmtree(Settings(home=home).fast_decode_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = render_markdown_pdfs(sorted((ROOT / "docs").rglob("*.md")), Path(tmp), root=ROOT)
        changed = 0
        for pdf in fresh:
            old = corpus / pdf.name
            if not old.exists() or _unstamped(old.read_bytes()) != _unstamped(pdf.read_bytes()):
                shutil.copyfile(pdf, old)
                changed += 1
    progress(f"demo corpus: {changed} of {len(fresh)} pages changed since the last render")
    env = dict(session_env(), HYBRID_HOME=str(home))
    subprocess.run([str(ROOT / ".venv" / "bin" / "hybrid"), "ingest", str(corpus)], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _unstamped(pdf: bytes) -> bytes:
    return re.sub(rb"/CreationDate \(D:[^)]*\)|/ID \[<[0-9A-F]*><[0-9A-F]*>\]", b"", pdf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="Markdown files [default: README.md and docs/]")
    parser.add_argument("--check", action="store_true", help="re-run and compare; rewrite nothing")
    parser.add_argument("--cheap", action="store_true", help="with --check: only the commands that take seconds")
    args = parser.parse_args(argv)
    files = [Path(f).resolve() for f in args.files] or documents()
    files = [f for f in files if parse(f.read_text(encoding="utf-8"))]
    started = time.perf_counter()
    if args.check:
        problems = []
        for path in files:
            if args.cheap and str(path.relative_to(ROOT)) in FRESH:
                print(f"skipped {path.relative_to(ROOT)}: its quick commands need the whole session before them")
                continue
            if not args.cheap:
                reset(path)
            problems += check(path, cheap=args.cheap)
        for s in problems:
            print(f"stale: {s.file}: $ {s.command}\n{s.diff}\n")
        print(f"{len(problems)} stale output(s) in {len(files)} file(s), {time.perf_counter() - started:.0f} s")
        return 1 if problems else 0
    sync_demo()
    for path in files:
        print(f"== {path.relative_to(ROOT)}", flush=True)
        changed = generate(path, progress=lambda m: print(m, flush=True))
        print(f"   {'rewritten' if changed else 'unchanged'}", flush=True)
    from figures import write_page  # .ci/docs/figures.py, beside this script

    write_page()
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
