"""The generated API reference matches the routes the server has."""

from __future__ import annotations

from pathlib import Path

from serve import create_app
from serve.apidoc import render

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "api.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    fresh = render(create_app().openapi())
    assert REFERENCE.read_text() == fresh, "routes changed: run `.venv/bin/python -m serve.apidoc > docs/reference/api.md`"


def test_every_route_and_body_is_listed() -> None:
    schema = create_app().openapi()
    text = render(schema)
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"### {method.upper()} {path}" in text
    for name in schema["components"]["schemas"]:
        assert f"### {name}" in text
