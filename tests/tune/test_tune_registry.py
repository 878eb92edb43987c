"""Adapter versions on disk: numbering, activation, references, name validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tune import AdapterMeta, AdapterNotFoundError, AdapterRegistry, InvalidAdapterNameError, TuneError, parse_ref
from tune.registry import META_SCHEMA


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
    assert (registry.active("house").meta.base_model, registry.active("house").meta.examples) == ("tiny", 2)


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
    assert (found.name, found.version, found.path, found.meta.recorded) == ("my-adapter", 0, outside, False)
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


def test_rollback_undoes_activations_one_at_a_time(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    for _ in range(3):
        make_version(registry, "house")  # each finished run becomes active: v1, v2, v3
    assert registry.history("house") == [1, 2]
    registry.activate("house", 1)
    assert registry.history("house") == [1, 2, 3]
    assert registry.rollback("house").ref == "house@v3"
    assert registry.rollback("house").ref == "house@v2"
    assert registry.rollback("house").ref == "house@v1"
    assert registry.active("house").version == 1 and registry.history("house") == []
    with pytest.raises(AdapterNotFoundError, match="earliest version.*house@v1, house@v2, house@v3"):
        registry.rollback("house")


def test_activating_the_active_version_keeps_the_history(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    make_version(registry, "house")
    make_version(registry, "house")
    registry.activate("house", 2)
    assert registry.history("house") == [1]
    assert registry.rollback("house").version == 1


def test_an_active_json_without_history_rolls_back_to_the_previous_number(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    for _ in range(3):
        make_version(registry, "house")
    (tmp_path / "house" / "active.json").write_text('{"version": 3}\n')  # as older releases wrote it
    assert registry.active("house").version == 3 and registry.history("house") == []
    assert registry.rollback("house").version == 2
    assert registry.rollback("house").version == 1
    state = json.loads((tmp_path / "house" / "active.json").read_text())
    assert state["version"] == 1  # still readable by code that knows only {"version": N}


def test_rollback_skips_versions_removed_from_disk(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    for _ in range(3):
        make_version(registry, "house")
    shutil.rmtree(tmp_path / "house" / "v2")
    assert registry.rollback("house").version == 1


def test_rollback_needs_an_adapter_with_an_active_version(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path)
    with pytest.raises(AdapterNotFoundError, match="no adapter named legal"):
        registry.rollback("legal")
    make_version(registry, "legal", activate=False)
    with pytest.raises(AdapterNotFoundError, match="no active version"):
        registry.rollback("legal")


def test_parse_ref_validates_the_name_and_version() -> None:
    assert parse_ref("house") == ("house", None)
    assert parse_ref(" house@v12 ") == ("house", 12)
    for bad in ["../x@v1", "house@v0", "house@2", "house@latest", "a/b", ""]:
        with pytest.raises(InvalidAdapterNameError):
            parse_ref(bad)


def test_meta_json_of_any_schema_is_read_and_unknown_keys_are_kept(tmp_path: Path) -> None:
    old = {"name": "house", "version": 3, "base_model": "tiny", "examples": 40, "losses": {"eval_loss": 1.5},
           "warnings": None, "from_a_newer_hybrid": {"x": 1}}
    meta = AdapterMeta.read(old)
    assert (meta.schema, meta.name, meta.examples, meta.losses["eval_loss"]) == (0, "house", 40, 1.5)
    assert meta.warnings == [] and meta.lineage == [] and meta.context is None  # missing or null: the default
    assert meta.recorded and not AdapterMeta().recorded
    assert meta.to_dict()["from_a_newer_hybrid"] == {"x": 1}  # written back as it was
    assert AdapterMeta.read(meta.to_dict()) == meta


def test_finalize_writes_the_current_schema(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    number, path = registry.create_version("house")
    (path / "adapter_config.json").write_text("{}")
    version = registry.finalize("house", number, {"base_model": "tiny", "examples": 2})
    written = json.loads((path / "meta.json").read_text())
    assert written["schema"] == META_SCHEMA and written["examples"] == 2
    assert version.meta == AdapterMeta.read(written)
