"""What ``hybrid tune`` prints for people: the check, the training outcome and an evaluation.

Each function takes the command's ``--json`` document and returns the lines a person reads,
so the two outputs cannot disagree.
"""

from __future__ import annotations


def check_text(r: dict) -> str:
    n, errors, flagged = r["examples"], r["problems"], r["line_warnings"]
    verdict = "ok" if r["ok"] else f"{_count(len(errors), 'error')}: lines that cannot be used"
    lines = [f"{_count(n, 'usable example')}: {verdict} (checked in {r['seconds']:.1f} s)"]
    if r["size"] and r["size"] not in r["warnings"]:
        lines.append(f"size: {r['size']}")
    if lengths := r["lengths"]:
        by = f"{lengths['tokenizer']} tokenizer" if lengths["tokenizer"] else "estimated from characters"
        lines.append(
            f"length: median {lengths['median']:,}, longest {lengths['longest']:,} {lengths['unit']} ({by}); "
            f"limit {lengths['limit']:,}, {lengths['over_limit']:,} over"
        )
    lines += _grouped("errors (fix them, or --force skips these lines)", errors, most=10)
    lines += _grouped("skipped (longer than the limit: training leaves these lines out)", r["skipped"], most=10)
    lines += _grouped("line warnings (these lines still train; look at them)", flagged, most=5)
    if r["warnings"]:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in r["warnings"]]
    return "\n".join(lines)


def _grouped(title: str, items: list[dict], most: int) -> list[str]:
    """``FILE:LINE: [code] message`` per item, grouped by code, the first ``most`` of each code."""
    if not items:
        return []
    lines = [f"{title}:"]
    for code in dict.fromkeys(p["code"] for p in items):
        same = [p for p in items if p["code"] == code]
        lines += [f"  {p['source']}:{p['line']}: [{code}] {p['message']}" for p in same[:most]]
        if len(same) > most:
            lines.append(f"  ... and {len(same) - most:,} more [{code}] (--json lists them all)")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def tune_text(r: dict) -> str:
    lines = [f"trained {r['adapter']} on {r['examples']} examples in {r['seconds']:.0f} s -> {r['path']}"]
    if r["parent"]:
        lines.append(f"  continued from {r['parent']}, with {r['replayed']} of its earlier examples replayed")
    if r["resumed_from"]:
        lines.append(f"  resumed from step {r['resumed_from']}")
    lines.append(f"  train loss {r['train_loss']:.3f}")
    if r["eval_loss"] is not None:
        held = f" ({r['held_out']} examples held out of the training files)" if r["held_out"] else ""
        lines.append(f"  held-out loss {r['base_eval_loss']:.3f} (base model) -> {r['eval_loss']:.3f} (adapter){held}")
    if gate := r["gate"]:
        new, old = gate["new"], gate["active"]
        style = f", style {old['style_score']:.3f} -> {new['style_score']:.3f}" if new.get("style_score") is not None else ""
        lines.append(f"  gate against {gate['against']}: held-out loss {old['eval_loss']:.3f} -> {new['eval_loss']:.3f}{style}")
    if r["activated"]:
        lines.append(f"  active: {r['adapter']}")
    else:
        name = r["adapter"].split("@")[0]
        lines.append(f"  NOT activated, {name} stays {r['gate']['against']}: " + "; ".join(r["gate"]["reasons"]))
        lines.append(f"  to use it anyway: hybrid adapters activate {r['adapter']}")
    lines.append(f"  metrics and loss curve: {r['files']['metrics']}, {r['files']['loss_curve']}")
    if c := r.get("context"):
        t = c["training"]
        lines.append(
            f"  with context from {c['index']}: {t['cited']} examples cite passages, {t['refusals']} refuse, "
            f"{t['unsupported']} without sources"
        )
    lines += [f"  warning: {w}" for w in r["warnings"]]
    if r["line_warnings"]:
        lines.append(f"  {len(r['line_warnings'])} line warnings (near duplicates, leaked facts...): see them with --check")
    return "\n".join(lines)


def eval_text(r: dict) -> str:
    compared = r["base_eval_loss"] is not None
    who = r["adapter"] or "the base model"
    lines = [
        f"{who}: held-out loss on {_count(r['examples'], 'example')}, replies to {r['scored']} of them "
        f"(up to {r['max_new_tokens']} tokens), in {r['seconds']:.0f} s"
    ]

    def pair(base: float | None, value: float | None, digits: int) -> str:
        shown = "-" if value is None else f"{value:.{digits}f}"
        if not compared:
            return shown
        return f"{'-' if base is None else f'{base:.{digits}f}'} (base model) -> {shown} (adapter)"

    lines.append(f"  held-out loss {pair(r['base_eval_loss'], r['eval_loss'], 3)}   lower is better")
    lines.append(f"  style score   {pair(r['base_style_score'], r['style_score'], 3)}   higher is better")
    base_parts = r["base_components"] or {}
    for name in ("chrf", "markers", "length", "layout"):
        lines.append(f"    {name:<8} {pair(base_parts.get(name), r['components'][name], 2)}")
    lines.append(f"  {r['measures']}")
    if r["markers"]:
        lines.append("  house markers found in the references: " + ", ".join(f'"{m}"' for m in r["markers"]))
    else:
        lines.append("  house markers: none recur in 30% of the references, so that component is left out")
    if r["worst"]:
        lines.append("  lowest-scoring replies:")
    for s in r["worst"]:
        lines.append(f"    {s['source']}:{s['line']}: score {s['score']['score']:.2f}")
        lines.append(f"      reference: {_short(s['reference'])}")
        lines.append(f"      generated: {_short(s['generated'])}")
    lines += [f"  warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)


def _short(text: str, most: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[: most - 3] + "..."


__all__ = ["check_text", "eval_text", "tune_text"]
