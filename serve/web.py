"""``GET /``: a small chat page (plain HTML, CSS and JS from serve/web/, nothing from elsewhere).

The page itself is public, like /healthz: it holds no data. What it shows comes from the /v1
routes with the key the user types, so the key check stays where it is. A strict Content
Security Policy allows only this server's own scripts, styles and fetches.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from hybrid import NotFoundError

WEB_DIR = Path(__file__).with_name("web")
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/web/{name}")
def asset(name: str) -> FileResponse:
    # A fixed list, not a directory lookup: no path from the request reaches the file system.
    if name not in ASSETS:
        raise NotFoundError(f"no web asset named {name!r}")
    return FileResponse(WEB_DIR / name, media_type=ASSETS[name], headers=HEADERS)
