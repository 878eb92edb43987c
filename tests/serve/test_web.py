"""The chat page at ``GET /``: served with a strict policy, and driven in headless Chromium.

The browser tests need Debian's ``chromium`` package (``make test`` installs it where it may, or
set ``HYBRID_TEST_CHROMIUM=/path``); they skip, saying so, where there is none, and fail under CI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from serve import create_app
from serve.web import WEB_DIR
from serve.web import router as web_router
from tests.support.chromium import Browser
from tests.support.live_server import live_server
from tests.support.tools import require_chromium

QUESTION = "How much did revenue grow?"
WINDOW = (1024, 900)


@pytest.fixture
def browser(tmp_path: Path):
    """Headless Chromium with one page, over the DevTools protocol."""
    with Browser(require_chromium(), tmp_path / "profile", WINDOW) as opened:
        yield opened


# What the page shows, read in the page itself.
SHOWN = """({
  state: document.body.dataset.state,
  answer: document.getElementById("answer").textContent,
  error: document.getElementById("error").textContent,
  route: document.getElementById("route").textContent,
  citations: Array.from(document.querySelectorAll("#citations li"), (li) => li.textContent),
  options: Array.from(document.querySelectorAll("#adapter option"), (o) => o.value),
})"""
# document.body is null while a navigation is still loading.
FINISHED = "document.body && ['done', 'error'].includes(document.body.dataset.state)"


def _ask(browser: Browser, url: str) -> dict:
    browser.open(url)
    browser.wait_for(FINISHED)
    return browser.evaluate(SHOWN)


# -- served as it should be (no browser needed) ----------------------------------------------


def test_page_and_assets_are_served_with_a_strict_policy(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert '<script src="/web/app.js"' in page.text and 'href="/web/app.css"' in page.text
    assert client.get("/web/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/web/app.css").headers["content-type"].startswith("text/css")
    for bad in ("/web/index.html.bak", "/web/..%2Fweb.py", "/web/nothing.js"):
        response = client.get(bad)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_page_loads_nothing_from_elsewhere() -> None:
    """No CDN, no web fonts, no inline script: every file is ours and served by this server."""
    for path in WEB_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//cdn|@import", text), f"{path.name} refers to another site"
    index = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", index, re.S)
    assert scripts and all('src="/web/' in attrs and not body.strip() for attrs, body in scripts)


def test_page_needs_no_key_but_the_api_still_does(pipeline) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    settings = pipeline.settings.model_copy(update={"api_key": SecretStr("q-key")})
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        assert client.get("/").status_code == 200
        assert client.post("/v1/query", json={"question": QUESTION}).status_code == 401


# -- in a real browser --------------------------------------------------------------------------


def test_browser_answers_with_citations_from_the_real_server(pipeline, browser) -> None:
    with live_server(create_app(pipeline.settings, pipeline=pipeline)) as base:
        shown = _ask(browser, f"{base}/?q={quote(QUESTION)}&autorun=1")
    assert shown["state"] == "done", shown["error"]
    assert shown["answer"].strip() and shown["route"] == "rag"
    first = shown["citations"][0]
    assert "quarterly revenue été.pdf" in first and "page 1" in first
    assert "Revenue grew 12 percent" in first  # the quote


def _streaming_stub() -> FastAPI:
    """The page's routes and a /v1/query that streams as the contract says (tokens, answer, DONE)."""
    app = FastAPI()
    app.include_router(web_router)
    answer = {
        "answer": "Revenue grew 12 percent [1].",
        "citations": [{"n": 1, "source": "/docs/q3 report.pdf", "page": 4, "chunk_id": "c1", "quote": "Revenue grew 12 percent"}],
        "route": "rag",
        "grounded": True,
        "adapter": "house@v2",
        "timings": {"retrieve_ms": 5.0, "generate_ms": 40.0},
    }
    seen: list[dict] = []

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/v1/adapters")
    def adapters():
        return [{"name": "house", "versions": ["v1", "v2"], "active": "v2"}]

    @app.post("/v1/query")
    async def query(body: dict):
        seen.append(body)
        if body.get("adapter") != "house@v1" or body.get("stream") is not True:
            return JSONResponse({"error": {"code": "bad", "message": f"unexpected body {body}"}}, status_code=400)

        async def events():
            for piece in ("Revenue", " grew", " 12", " percent."):
                yield f"data: {json.dumps({'token': piece})}\n\n"
            yield f"data: {json.dumps({'answer': answer})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.state.seen = seen
    return app


def test_browser_reads_a_streamed_answer_and_lists_adapters(browser) -> None:
    app = _streaming_stub()
    with live_server(app) as base:
        shown = _ask(browser, f"{base}/?q={quote(QUESTION)}&adapter=house%40v1&autorun=1")
    assert shown["state"] == "done", shown["error"]
    assert app.state.seen and app.state.seen[-1]["stream"] is True
    assert shown["answer"] == "Revenue grew 12 percent [1]."  # the final text replaces the tokens
    assert "q3 report.pdf" in shown["citations"][0] and "page 4" in shown["citations"][0]
    assert shown["options"] == ["", "none", "house", "house@v1", "house@v2"]


def test_browser_shows_a_json_error(pipeline, browser) -> None:
    from pydantic import SecretStr

    settings = pipeline.settings.model_copy(update={"api_key": SecretStr("q-key")})
    with live_server(create_app(settings, pipeline=pipeline)) as base:
        shown = _ask(browser, f"{base}/?q={quote(QUESTION)}&autorun=1")
    assert shown["state"] == "error" and "(unauthorized)" in shown["error"] and "API key" in shown["error"]


def _ink(png: Path) -> tuple[tuple[int, int], float, int]:
    """(size, grey-level standard deviation, pixels differing from the most common colour)."""
    from PIL import Image, ImageStat

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24)
        background = max(colours)[1]
        ink = sum(count for count, colour in colours if colour != background)
        return rgb.size, ImageStat.Stat(rgb.convert("L")).stddev[0], ink


def test_screenshot_of_an_answered_question_is_not_blank(pipeline, browser, tmp_path: Path) -> None:
    with live_server(create_app(pipeline.settings, pipeline=pipeline)) as base:
        browser.open(f"{base}/")
        browser.wait_for("document.body?.dataset.state === 'idle' && document.getElementById('health').textContent === 'ready'")
        empty = browser.screenshot(tmp_path / "empty.png")
        _ask(browser, f"{base}/?q={quote(QUESTION)}&autorun=1")
        answered = browser.screenshot(tmp_path / "answered.png")
    for png in (empty, answered):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (empty_size, empty_spread, empty_ink), (size, spread, ink) = _ink(empty), _ink(answered)
    assert empty_size == size == WINDOW
    assert empty_spread > 5 and spread > 5  # not one flat colour
    # The answer, its badges and the quoted sources add ink below the form.
    assert ink > empty_ink * 1.2, (ink, empty_ink)
