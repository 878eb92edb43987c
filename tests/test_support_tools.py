"""A test that needs a missing system tool skips on a developer's machine and fails on CI."""

from __future__ import annotations

import pytest

from tests.support import tools


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_a_missing_tool_skips_off_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool"):
        tools.missing_tool("needs no-such-tool")


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_a_missing_tool_fails_on_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="needs no-such-tool.*CI is set"):
        tools.missing_tool("needs no-such-tool")


def test_the_require_helpers_use_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PATH", "")  # neither tool on PATH
    monkeypatch.delenv("HYBRID_TEST_CHROMIUM", raising=False)
    with pytest.raises(pytest.fail.Exception, match="tesseract-ocr"):
        tools.require_tesseract()
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        tools.require_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="tesseract-ocr"):
        tools.require_tesseract()
