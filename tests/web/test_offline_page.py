"""The chat's HTML names no other host (copilot.web.offline_page), on Chainlit's real index."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import chainlit

from copilot.web.offline_page import without_remote_tags

ROOT = Path(__file__).resolve().parents[2]
INDEX = Path(chainlit.__file__).parent / "frontend" / "dist" / "index.html"


def test_chainlits_index_loses_its_cdn_links_and_keeps_its_own_assets() -> None:
    index = INDEX.read_text()
    assert "fonts.googleapis.com" in index and "cdn.jsdelivr.net" in index  # what we fix

    page = without_remote_tags(index)

    assert "//" not in page.replace("<!doctype html>", "")
    assert '<script type="module" crossorigin src="/assets/' in page
    assert '<link rel="stylesheet" crossorigin href="/assets/' in page
    assert "<!-- FONT START -->" in page  # the font hook still finds its place


def test_remote_meta_urls_go_and_local_ones_stay() -> None:
    page = (
        '<meta property="og:image" content="https://example.org/banner.png">\n'
        '<meta property="og:url" content="//example.org/">\n'
        '<meta property="og:title" content="Copilot">\n'
        '<link rel="icon" href="/chat/favicon" />\n'
    )

    assert without_remote_tags(page) == (
        '<meta property="og:title" content="Copilot">\n<link rel="icon" href="/chat/favicon" />\n'
    )


def test_the_font_is_bundled_and_math_is_off_so_katex_is_not_needed() -> None:
    theme = json.loads((ROOT / "public" / "theme.json").read_text())
    [font_css] = theme["custom_fonts"]
    css = ROOT / font_css.lstrip("/")
    assert css.is_file() and "font-family: 'Inter'" in css.read_text()
    for line in css.read_text().splitlines():
        if "url(" in line:
            name = line.split("url(./", 1)[1].split(")", 1)[0]
            assert (css.parent / name).is_file(), name
    assert (css.parent / "LICENSE").is_file()
    config = tomllib.loads((ROOT / ".chainlit" / "config.toml").read_text())
    assert config["features"]["latex"] is False


def test_the_middleware_rewrites_gzipped_pages_under_its_prefix_only() -> None:
    from starlette.applications import Starlette
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from copilot.web.offline_page import OfflinePage

    index = INDEX.read_text()  # over GZip's 500-byte minimum
    inner = Starlette(
        routes=[
            Route("/chat/", lambda _: HTMLResponse(index)),
            Route("/chat/data", lambda _: JSONResponse({"url": "https://example.org/"})),
            Route("/other/", lambda _: HTMLResponse(index)),
        ]
    )
    inner.add_middleware(GZipMiddleware)
    client = TestClient(OfflinePage(inner, prefix="/chat"))

    page = client.get("/chat/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and "jsdelivr" not in page.text
    assert "/assets/index-" in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    assert client.get("/chat/data").json() == {"url": "https://example.org/"}
    assert "jsdelivr" in client.get("/other/").text
