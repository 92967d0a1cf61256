"""The web UI's files as `rfq serve` serves them: the page, every module it imports, no
external resource (the machine may have no internet), no markup built from strings."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.app import create_web_app
from rfq_engine.config import parse_config
from rfq_engine.wiring import open_app
from tests.api.conftest import config_data

STATIC = Path(__file__).parents[2] / "rfq_engine" / "api" / "static"
IMPORT = re.compile(r"""(?:from|import)\s+["']\./([\w-]+\.js)["']""")
EXTERNAL = re.compile(r"""https?://(?!www\.w3\.org/2000/svg)""")  # the SVG namespace is a name


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    config = parse_config(config_data(tmp_path))
    app = await open_app(config)
    test_client = TestClient(TestServer(create_web_app(app, config.api)))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()
        await app.close()


async def test_the_page_and_every_module_it_imports_are_served(client: TestClient[Any, Any]) -> None:
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-cache"  # never a mix of two versions' modules
    html = await page.text()
    assert '<script type="module" src="/static/app.js"></script>' in html
    assert 'href="/static/style.css"' in html
    css = await client.get("/static/style.css")
    assert css.status == 200 and css.content_type == "text/css"
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200, name
        assert "javascript" in resp.content_type, (name, resp.content_type)
        assert resp.headers["Cache-Control"] == "no-cache"
        todo.extend(IMPORT.findall(await resp.text()))
    assert seen == {p.name for p in STATIC.glob("*.js")}  # no module left unused
    assert (await client.get("/static/../config.py")).status in (403, 404)


def test_no_external_resources_and_no_html_from_strings() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not EXTERNAL.search(text), f"{path.name} loads from the internet"
        if path.suffix == ".js":
            # every text reaches the DOM through textContent (util.h); a dealer's or a
            # user's string can never become markup
            assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write",
                                 text), path.name
            assert "console.log" not in text, path.name  # nothing (a token) ends up in logs
