"""Settings: defaults, environment, hybrid.toml, unknown keys, HYBRID_HOME layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.config import is_loopback, load_settings
from hybrid.errors import ConfigError


def test_defaults_and_home_layout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYBRID_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.home == tmp_path and s.index_dir == tmp_path / "index"
    assert s.adapters_dir == tmp_path / "adapters" and s.k == 5
    # The whole layout of HYBRID_HOME, decided in one place (the docs' reference/config.md).
    assert (s.models_dir, s.uploads_dir, s.jobs_dir) == (tmp_path / "models", tmp_path / "uploads", tmp_path / "jobs")
    assert (s.fast_decode_dir, s.evals_dir) == (tmp_path / "cache" / "fast-decode", tmp_path / "evals")


def test_toml_env_and_flags_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "hybrid.toml").write_text("k = 4\n[ingest]\nchunk_size = 500\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().k == 4 and load_settings().ingest.chunk_size == 500
    monkeypatch.setenv("HYBRID_K", "6")
    assert load_settings().k == 6
    assert load_settings(k=7, index=None).k == 7


def test_unknown_key_and_bad_values_are_reported_together(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "hybrid.toml").write_text("bogus = 1\nk = 0\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "bogus" in str(info.value) and "k:" in str(info.value)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("10.0.0.5", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
