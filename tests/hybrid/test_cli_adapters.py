"""``hybrid adapters list|show|activate|rollback|export`` in-process: JSON on stdout, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid.cli import main


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)  # exactly one JSON document, or this fails


def human(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def versions(home: Path) -> Path:
    """house@v1..v3 (v3 active, as after three `hybrid tune` runs) and legal@v1, with meta.json."""
    import tune

    registry = tune.AdapterRegistry(home / "adapters")
    for name, count in (("house", 3), ("legal", 1)):
        for _ in range(count):
            number, path = registry.create_version(name)
            (path / "adapter_config.json").write_text("{}")
            meta = {
                "name": name,
                "version": number,
                "base_model": "tiny-base",
                "data_files": [f"/data/{name}.jsonl"],
                "data_sha256": f"{number:064x}",
                "examples": 10 * number,
                "losses": {"train_loss": 2.5 / number, "eval_loss": 3.0 / number if number > 1 else None, "base_eval_loss": 3.5},
                "hyperparameters": {"rank": 8, "alpha": 16},
                "steps": 4 * number,
                "created": f"2025-01-0{number}T10:00:00+00:00",
            }
            if number > 1:
                meta["lineage"] = {"parent": f"{name}@v{number - 1}"}
            registry.finalize(name, number, meta)
    return home / "adapters"


def test_list_marks_the_active_version_of_each_adapter(versions: Path) -> None:
    code, listed = run("adapters", "list")
    assert code == 0 and [a["name"] for a in listed["adapters"]] == ["house", "legal"]
    house = listed["adapters"][0]
    assert house["active"] == "house@v3"
    assert [(v["adapter"], v["active"]) for v in house["versions"]] == [("house@v1", False), ("house@v2", False), ("house@v3", True)]
    v2 = house["versions"][1]
    assert (v2["examples"], v2["eval_loss"], v2["created"]) == (20, 1.5, "2025-01-02T10:00:00+00:00")
    assert house["versions"][0]["eval_loss"] is None
    text = human("adapters", "list")
    assert "* house@v3" in text and "  house@v1" in text and "eval loss 1.500" in text and "no eval" in text


def test_list_one_name_and_an_unknown_name(versions: Path) -> None:
    code, listed = run("adapters", "list", "legal")
    assert code == 0 and [a["name"] for a in listed["adapters"]] == ["legal"]
    code, error = run("adapters", "list", "medical")
    assert code == 1 and error["error"]["code"] == "not_found"
    assert "medical" in error["error"]["message"] and "house, legal" in error["error"]["message"]


def test_list_with_no_adapters_says_how_to_make_one(home: Path) -> None:
    code, listed = run("adapters", "list")
    assert code == 0 and listed["adapters"] == []
    assert "hybrid tune" in human("adapters", "list")


def test_show_prints_the_recorded_fields(versions: Path) -> None:
    code, shown = run("adapters", "show", "house")  # a bare name means the active version
    assert code == 0 and shown["adapter"] == "house@v3" and shown["active"] is True
    assert shown["meta"]["lineage"] == {"parent": "house@v2"} and shown["meta"]["hyperparameters"]["rank"] == 8
    code, shown = run("adapters", "show", "house@v1")
    assert code == 0 and shown["active"] is False and shown["meta"]["examples"] == 10
    assert shown["path"] == str(versions / "house" / "v1")
    text = human("adapters", "show", "house@v2")
    assert "house@v2\n" in text and "tiny-base" in text and "rank=8 alpha=16" in text
    assert "held-out loss    1.500 (base model 3.500)" in text and "parent=house@v1" in text


def test_activate_then_rollback_walks_back_through_the_activations(versions: Path) -> None:
    code, change = run("adapters", "activate", "house@v1")
    assert code == 0 and change == {"name": "house", "before": "house@v3", "active": "house@v1", "changed": True}
    assert run("adapters", "show", "house")[1]["adapter"] == "house@v1"
    assert "house: rolled back house@v1 -> house@v3" in human("adapters", "rollback", "house")
    code, change = run("adapters", "rollback", "house")
    assert code == 0 and (change["before"], change["active"]) == ("house@v3", "house@v2")
    code, change = run("adapters", "rollback", "house")
    assert code == 0 and change["active"] == "house@v1"
    code, error = run("adapters", "rollback", "house")
    assert code == 1 and "nothing to roll back" in error["error"]["message"]
    assert run("adapters", "list", "house")[1]["adapters"][0]["active"] == "house@v1"  # the failure changed nothing


def test_activating_the_active_version_changes_nothing(versions: Path) -> None:
    code, change = run("adapters", "activate", "house@v3")
    assert code == 0 and change["changed"] is False
    assert "already the active version" in human("adapters", "activate", "house@v3")


def test_rollback_of_an_active_json_from_an_older_release(versions: Path) -> None:
    (versions / "house" / "active.json").write_text('{"version": 3}\n')  # no history recorded
    code, change = run("adapters", "rollback", "house")
    assert code == 0 and (change["before"], change["active"]) == ("house@v3", "house@v2")


@pytest.mark.parametrize(
    ("args", "code_name", "mentions"),
    [
        (["activate", "house@v9"], "not_found", "house@v1, house@v2, house@v3"),
        (["activate", "medical@v1"], "not_found", "house, legal"),
        (["activate", "house"], "bad_request", "NAME@vN"),
        (["activate", "../house@v1"], "invalid_adapter_name", "invalid adapter name"),
        (["activate", "house@latest"], "invalid_adapter_name", "NAME@vN"),
        (["rollback", "../../etc"], "invalid_adapter_name", "invalid adapter name"),
        (["rollback", "house@v2"], "bad_request", "activate house@v2"),
        (["rollback", "medical"], "not_found", "house, legal"),
        (["show", "house@v7"], "not_found", "house@v1, house@v2, house@v3"),
        (["show", "none"], "bad_request", "base model"),
        (["list", "a/b"], "invalid_adapter_name", "invalid adapter name"),
    ],
)
def test_errors_are_one_line_naming_what_exists(versions: Path, args: list[str], code_name: str, mentions: str) -> None:
    before = (versions / "house" / "active.json").read_text()
    result = CliRunner().invoke(main, ["adapters", *args, "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == code_name and mentions in error["message"]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert (versions / "house" / "active.json").read_text() == before


def test_export_writes_the_adapter_and_refuses_to_overwrite(home: Path, tmp_path: Path) -> None:
    examples = tmp_path / "house.jsonl"
    examples.write_text("".join(
        json.dumps({"prompt": f"Is note {i} filed?", "completion": f"Note {i} is filed. Kind regards, Support."}) + "\n"
        for i in range(8)
    ))
    code, trained = run("tune", str(examples), "--max-steps", "1")
    assert code == 0 and trained["adapter"] == "house@v1"
    out = tmp_path / "export"
    code, result = run("adapters", "export", "house", "--out", str(out), "--adapter-only")
    assert code == 0 and result["adapter"] == "house@v1" and result["merged"] is None
    assert result["files"] == ["adapter_config.json", "adapter_model.safetensors", "meta.json"]
    assert json.loads((out / "meta.json").read_text())["version"] == 1
    code, error = run("adapters", "export", "house", "--out", str(out))
    assert code == 1 and "not empty" in error["error"]["message"] and "--force" in error["error"]["message"]
    assert not (out / "merged").exists()
    (out / "notes.txt").write_text("mine")
    code, result = run("adapters", "export", "house@v1", "--out", str(out), "--force")
    assert code == 0 and result["merged"] == str(out / "merged") and result["base_model_dir"]
    assert (out / "merged" / "model.safetensors").is_file() and (out / "merged" / "tokenizer.json").is_file()
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces only what an export writes
    code, error = run("adapters", "export", "house", "--out", str(home / "adapters" / "copy"))
    assert code == 1 and "inside the adapter registry" in error["error"]["message"]
    code, error = run("adapters", "export", "house@v4", "--out", str(tmp_path / "other"))
    assert code == 1 and error["error"]["code"] == "not_found" and not (tmp_path / "other").exists()

