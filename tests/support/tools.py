"""System tools some tests drive (Chromium, Tesseract): skip without them, except under CI.

`make test` installs both from Debian's packages where it may (`.ci/system-deps`). A developer
without them still gets a green run with the skips listed; on CI (``CI=true``, as GitHub Actions
and GitLab set it) a missing tool means the set-up is broken, so the test fails instead of
passing by skipping.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

from tests.support.chromium import find_chromium


def on_ci() -> bool:
    """True when the ``CI`` environment variable is set to anything but empty/0/false/no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tool(message: str) -> NoReturn:
    """Skip the current test because a system tool is missing; under CI, fail it instead."""
    if on_ci():
        pytest.fail(f"{message} [CI is set: a missing tool fails the test rather than skip it]", pytrace=False)
    pytest.skip(message)


def require_tesseract() -> str:
    """The path of the `tesseract` executable, or skip (fail under CI) saying how to install it."""
    path = shutil.which("tesseract")
    if path is None:
        missing_tool("needs the tesseract executable (make system-deps, or apt-get install tesseract-ocr)")
    return path


def require_chromium() -> str:
    """The Chromium to drive (see `find_chromium`), or skip (fail under CI) saying how to get one."""
    binary = find_chromium()
    if binary is None:
        missing_tool("no Chromium found (make system-deps, apt-get install chromium, or set HYBRID_TEST_CHROMIUM)")
    return binary
