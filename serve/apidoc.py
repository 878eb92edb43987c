"""The HTTP API reference, generated from the app's OpenAPI schema.

    .venv/bin/python -m serve.apidoc > docs/reference/api.md

A test compares the committed file with a fresh rendering, so the reference cannot drift from
the routes and bodies the server really has. No model is loaded: the schema comes from the
routes alone.
"""

from __future__ import annotations

import sys
from typing import Any

HEADER = """# HTTP API reference (generated)

Generated from the server's OpenAPI schema by `python -m serve.apidoc`; do not edit by hand.
The running server serves the same schema at `/openapi.json` and an interactive page at
`/docs`. For what the routes are for, with examples, see the [HTTP guide](http.md).
"""


def render(schema: dict[str, Any]) -> str:
    """Markdown for every route (method, path, summary, description, body, responses) and
    every schema (fields with type, whether required, and description)."""
    lines = [HEADER]
    lines += ["## Routes", ""]
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            lines += _route(method.upper(), path, op)
    lines += ["## Bodies", ""]
    for name, body in schema.get("components", {}).get("schemas", {}).items():
        lines += _body(name, body)
    return "\n".join(lines).rstrip() + "\n"


def _route(method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### {method} {path}", ""]
    if op.get("description") or op.get("summary"):
        lines += [_text(op.get("description") or op["summary"]), ""]
    params = [p for p in op.get("parameters", []) if p.get("name") != "authorization"]
    if params:
        lines.append("Parameters: " + ", ".join(
            f"`{p['name']}` ({p.get('in', '')}, {_type(p.get('schema', {}))}{', required' if p.get('required') else ''})"
            for p in params
        ) + ".")
        lines.append("")
    if body := op.get("requestBody"):
        kinds = [f"`{kind}` {_type(media.get('schema', {}))}" for kind, media in body.get("content", {}).items()]
        lines += [f"Request body: {', '.join(kinds)}.", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        kinds = [f"`{kind}` {_type(media.get('schema', {}))}" for kind, media in response.get("content", {}).items()]
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {', '.join(kinds) or '-'} |")
    return [*lines, ""]


def _body(name: str, body: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if body.get("description"):
        lines += [_text(body["description"]), ""]
    properties = body.get("properties", {})
    if not properties:
        return [*lines, f"Type: {_type(body)}.", ""]
    required = set(body.get("required", []))
    lines += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, spec in properties.items():
        lines.append(
            f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | {_cell(spec.get('description', ''))}"
            f"{_limits(spec)} |"
        )
    return [*lines, ""]


def _type(spec: dict[str, Any]) -> str:
    """A short type: ``str``, ``int``, ``array of Hit``, ``str | null``, a linked body name."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in spec:
            return " \\| ".join(_type(part) for part in spec[key])
    kind = spec.get("type")
    if kind == "array":
        return f"array of {_type(spec.get('items', {}))}"
    if "enum" in spec:
        return " \\| ".join(f"`{value}`" for value in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    return {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
            "object": "object", "null": "null"}.get(kind or "", "any")


def _limits(spec: dict[str, Any]) -> str:
    found = []
    for key, word in (("minimum", ">="), ("maximum", "<="), ("minLength", "length >="), ("maxLength", "length <="),
                      ("minItems", "items >="), ("maxItems", "items <="), ("pattern", "matches")):
        if key in spec:
            found.append(f"{word} `{_number(spec[key])}`")
    for part in spec.get("anyOf", []):
        if part.get("type") != "null" and (inner := _limits(part)):
            found.append(inner.strip(" ()"))
    if "default" in spec and spec["default"] is not None:
        found.append(f"default `{spec['default']}`")
    return f" ({'; '.join(found)})" if found else ""


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _text(text: str) -> str:
    return text.replace("``", "`").strip()


def _cell(text: str) -> str:
    return " ".join(_text(text).split()).replace("|", "\\|")


def main() -> int:
    from serve import create_app

    sys.stdout.write(render(create_app().openapi()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
