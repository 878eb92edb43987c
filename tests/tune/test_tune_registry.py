"""Adapter versions on disk: numbering, activation, references, name validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune import AdapterNotFoundError, AdapterRegistry, TuneError


def fake_train(path: Path) -> None:
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(b"")


def make_version(registry: AdapterRegistry, name: str, **kwargs):
    version, path = registry.create_version(name)
    fake_train(path)
    return registry.finalize(name, version, {"base_model": "tiny", "examples": version}, **kwargs)


def test_versions_increment_and_the_newest_is_active(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    assert registry.names() == [] and registry.versions("house") == [] and registry.active("house") is None
    first, second = make_version(registry, "house"), make_version(registry, "house")
    assert (first.ref, second.ref) == ("house@v1", "house@v2")
    assert second.path == tmp_path / "adapters" / "house" / "v2"
    assert registry.names() == ["house"]
    assert [v.version for v in registry.versions("house")] == [1, 2]
    assert registry.active("house").ref == "house@v2"
    assert registry.active("house").meta == {"base_model": "tiny", "examples": 2}


def test_activate_and_inactive_versions(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    make_version(registry, "house")
    make_version(registry, "house", activate=False)
    assert registry.active("house").version == 1
    assert registry.activate("house", 2).ref == "house@v2"
    assert registry.resolve("house").version == 2
    with pytest.raises(AdapterNotFoundError, match="house@v1, house@v2"):
        registry.activate("house", 7)


def test_resolve_every_kind_of_reference(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    make_version(registry, "house")
    make_version(registry, "house")
    assert registry.resolve("none") is None
    assert registry.resolve("house").ref == "house@v2"
    assert registry.resolve("house@v1").path == tmp_path / "adapters" / "house" / "v1"
    outside = tmp_path / "my-adapter"
    outside.mkdir()
    fake_train(outside)
    found = registry.resolve(str(outside))
    assert (found.name, found.version, found.path, found.meta) == ("my-adapter", 0, outside, {})
    assert registry.resolve(found.ref) == found  # a directory's ref resolves back to it


def test_unknown_references_list_what_exists(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    make_version(registry, "house")
    with pytest.raises(AdapterNotFoundError, match="house@v1"):
        registry.resolve("house@v9")
    with pytest.raises(AdapterNotFoundError, match="adapters in .*: house"):
        registry.resolve("legal")
    with pytest.raises(AdapterNotFoundError):
        registry.resolve("")


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 65, "a b", "..", "a\\b"])
def test_invalid_names_never_reach_the_filesystem(tmp_path: Path, name: str) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    with pytest.raises(TuneError, match="invalid adapter name"):
        registry.create_version(name)
    assert not (tmp_path / "x").exists() and not (tmp_path / "adapters").exists()


def test_path_like_references_do_not_escape(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    with pytest.raises(AdapterNotFoundError):
        registry.resolve("../x@v1")


def test_unfinished_versions_are_invisible_but_keep_their_number(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    number, path = registry.create_version("house")  # a run in progress
    assert registry.versions("house") == [] and registry.names() == []
    assert registry.create_version("house")[0] == number + 1  # a concurrent run takes the next number
    registry.discard("house", number)
    assert not path.exists()


def test_finalize_needs_a_trained_adapter(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    number, _ = registry.create_version("house")
    with pytest.raises(TuneError, match="adapter_config.json"):
        registry.finalize("house", number, {})
