"""``hybrid adapters list|show|activate|rollback|export``: manage the versions of the style adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hybrid.cli._common import allow_download_option, emit, guarded, json_option, log, settings_from
from hybrid.errors import BadRequestError

# meta.json keys that `show` prints in its own lines; any other key is printed as it is.
_SHOWN = {
    "name", "version", "created", "base_model", "base_model_dir", "data_files", "data_sha256", "examples",
    "eval_file", "eval_sha256", "eval_examples", "losses", "steps", "epochs", "tokens", "seconds",
    "hyperparameters", "warnings", "schema",
}


@click.group()
def adapters() -> None:
    """List, inspect, activate, roll back or export style adapter versions.

    \b
    hybrid adapters list                     every adapter and version; * marks the active one
    hybrid adapters show house@v2            what a version was trained on, and how it did
    hybrid adapters activate house@v1        make `house` stand for house@v1
    hybrid adapters rollback house           back to the version active before
    hybrid adapters export house --out DIR   bare adapter + merged model for other tools
    """


@adapters.command("list")
@click.argument("name", required=False)
@json_option
@guarded
def list_adapters(name: str | None, as_json: bool) -> None:
    """List adapters (or only NAME) and their versions; * marks the active one."""
    from hybrid.pipeline import Pipeline

    pipe = Pipeline(settings_from())
    groups: dict[str, list[dict]] = {}
    for version in pipe.adapters.versions(name):
        groups.setdefault(version.name, []).append(_summary(version))
    listed = []
    for adapter_name, versions in groups.items():
        active = pipe.adapters.active(adapter_name)
        for row in versions:
            row["active"] = active is not None and row["version"] == active.version
        listed.append({"name": adapter_name, "active": active.ref if active else None, "versions": versions})
    payload = {"root": str(pipe.adapters.root), "adapters": listed}
    emit(payload, as_json, _human_list)


@adapters.command("show")
@click.argument("ref")
@json_option
@guarded
def show(ref: str, as_json: bool) -> None:
    """Show what adapter REF was trained on, and its losses.

    REF: NAME (its active version), NAME@vN, or an adapter directory.
    """
    from hybrid.pipeline import Pipeline

    pipe = Pipeline(settings_from())
    version = pipe.adapters.resolve(ref)
    if version is None:
        raise BadRequestError(f"{ref!r} is the base model alone, not an adapter; name one (NAME or NAME@vN)")
    active = pipe.adapters.active(version.name) if version.version > 0 else None
    payload = {
        "adapter": version.ref,
        "name": version.name,
        "version": version.version,
        "path": str(version.path),
        "active": active is not None and active.version == version.version,
        "meta": version.meta.to_dict() if version.meta.recorded else {},
    }
    emit(payload, as_json, _human_show)


@adapters.command("activate")
@click.argument("ref", metavar="NAME@vN")
@json_option
@guarded
def activate(ref: str, as_json: bool) -> None:
    """Make NAME@vN the active version of NAME.

    The active version is what NAME means to `ask`, `serve` and the `auto` adapter.
    """
    from hybrid.pipeline import Pipeline

    before, after = Pipeline(settings_from()).adapters.activate(ref)
    emit(_change(before, after), as_json, lambda p: _human_change(p, "activated"))


@adapters.command("rollback")
@click.argument("name")
@json_option
@guarded
def rollback(name: str, as_json: bool) -> None:
    """Reactivate the version of NAME that was active before the current one.

    Each rollback goes one activation further back; without a recorded history, to the next
    lower version number.
    """
    from hybrid.pipeline import Pipeline

    before, after = Pipeline(settings_from()).adapters.rollback(name)
    emit(_change(before, after), as_json, lambda p: _human_change(p, "rolled back"))


@adapters.command("export")
@click.argument("ref")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write to.")
@click.option(
    "--merged/--adapter-only",
    default=True,
    show_default=True,
    help="Also write a merged full model to OUT/merged (loadable without PEFT).",
)
@click.option("--force", is_flag=True, help="Write into a non-empty --out, replacing what an earlier export wrote there.")
@click.option(
    "--for",
    "engine",
    type=click.Choice(["vllm", "llama.cpp", "ollama"]),
    default=None,
    help="Write what this serving engine loads (no merged model) and the command line that serves it.",
)
@allow_download_option
@json_option
@guarded
def export(
    ref: str, out_dir: str, merged: bool, force: bool, engine: str | None, allow_download: bool | None, as_json: bool
) -> None:
    """Export adapter REF as a bare PEFT adapter and a merged model, or for a serving engine.

    Writes the adapter (adapter_config.json, adapter_model.safetensors, meta.json) to OUT and,
    unless --adapter-only, the base model it was trained on with the adapter folded in to
    OUT/merged (safetensors and tokenizer; loads with plain transformers). With --for, instead
    of the merged model: for llama.cpp a GGUF LoRA adapter (adapter.gguf), for Ollama that and
    a Modelfile, for vLLM the PEFT adapter as it is; and engine.json with the base model and
    the command line that serves the adapter.
    """
    from hybrid.pipeline import Pipeline

    pipe = Pipeline(settings_from(allow_download=allow_download))
    result = pipe.adapters.export(ref, out_dir, merged=merged, force=force, engine=engine, progress=log)
    payload = {
        "engine": result.engine,
        "command": result.command,
        "adapter": result.adapter,
        "out": str(result.out_dir),
        "merged": str(result.merged_dir) if result.merged_dir else None,
        "base_model_dir": str(result.base_model_dir) if result.base_model_dir else None,
        "files": result.files,
        "seconds": round(result.seconds, 1),
    }
    emit(payload, as_json, _human_export)


def _summary(version: Any) -> dict:
    meta = version.meta
    return {
        "adapter": version.ref,
        "version": version.version,
        "created": meta.created,
        "examples": meta.examples,
        "train_loss": meta.losses.get("train_loss"),
        "eval_loss": meta.losses.get("eval_loss"),
        "base_model": meta.base_model,
        "path": str(version.path),
    }


def _change(before: Any, after: Any) -> dict:
    return {
        "name": after.name,
        "before": before.ref if before is not None else None,
        "active": after.ref,
        "changed": before is None or before.version != after.version,
    }


def _human_list(payload: dict) -> str:
    if not payload["adapters"]:
        return f"no adapters in {payload['root']} yet; train one with `hybrid tune EXAMPLES`"
    lines = []
    for group in payload["adapters"]:
        lines.append(f"{group['name']}  (active: {group['active'] or 'none'})")
        for row in group["versions"]:
            created = (row["created"] or "?").replace("T", " ")[:16]
            examples = f"{row['examples']} examples" if row["examples"] is not None else "? examples"
            loss = f"eval loss {_number(row['eval_loss'])}" if row["eval_loss"] is not None else "no eval"
            lines.append(f"  {'*' if row['active'] else ' '} {row['adapter']:<16} {created:<16}  {examples:>13}  {loss}")
    return "\n".join(lines)


def _human_show(p: dict) -> str:
    meta = p["meta"]
    lines = [f"{p['adapter']}{' (active)' if p['active'] else ''}", f"  path             {p['path']}"]
    if not meta:
        return "\n".join([*lines, "  no meta.json: trained outside hybrid, so nothing is recorded"])
    losses = meta.get("losses") if isinstance(meta.get("losses"), dict) else {}
    data = ", ".join(Path(f).name for f in meta.get("data_files") or []) or "?"
    rows = [
        ("created", meta.get("created")),
        ("base model", meta.get("base_model")),
        ("data", f"{data} (sha256 {str(meta['data_sha256'])[:12]})" if meta.get("data_sha256") else data),
        ("examples", meta.get("examples")),
        ("eval data", f"{Path(meta['eval_file']).name}, {meta.get('eval_examples')} examples" if meta.get("eval_file") else None),
        ("train loss", _number(losses.get("train_loss"))),
        ("held-out loss", _held_out(losses)),
        ("steps", _steps(meta)),
        ("hyperparameters", _pairs(meta.get("hyperparameters"))),
    ]
    rows += [(key, _pairs(value) if isinstance(value, dict) else value) for key, value in meta.items() if key not in _SHOWN]
    lines += [f"  {label:<16} {value}" for label, value in rows if value not in (None, "", [])]
    lines += [f"  warning: {w}" for w in meta.get("warnings") or []]
    return "\n".join(lines)


def _human_change(p: dict, verb: str) -> str:
    if not p["changed"]:
        return f"{p['active']} is already the active version of {p['name']}; nothing changed"
    return f"{p['name']}: {verb} {p['before'] or 'none'} -> {p['active']}"


def _human_export(p: dict) -> str:
    lines = [f"exported {p['adapter']} to {p['out']} in {p['seconds']:.0f} s"]
    lines.append(f"  adapter       {p['out']}  (peft.PeftModel.from_pretrained(base_model, DIR))")
    if p["merged"]:
        lines.append(f"  merged model  {p['merged']}  (transformers.AutoModelForCausalLM.from_pretrained)")
    if p["engine"]:
        lines.append(f"  for {p['engine']}: {p['command']}")
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _held_out(losses: dict) -> str | None:
    if losses.get("eval_loss") is None:
        return None
    return f"{_number(losses['eval_loss'])} (base model {_number(losses.get('base_eval_loss'))})"


def _steps(meta: dict) -> str | None:
    if meta.get("steps") is None:
        return None
    details = [f"{meta['epochs']:.2f} epochs" if isinstance(meta.get("epochs"), (int, float)) else None,
               f"{meta['tokens']} tokens" if meta.get("tokens") is not None else None,
               f"{meta['seconds']} s" if meta.get("seconds") is not None else None]
    shown = ", ".join(d for d in details if d)
    return f"{meta['steps']}" + (f" ({shown})" if shown else "")


def _pairs(values: Any) -> str | None:
    if not isinstance(values, dict):
        return None if values is None else str(values)
    return " ".join(f"{k}={v}" for k, v in values.items() if v is not None)
