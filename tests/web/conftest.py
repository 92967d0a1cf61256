"""A real ``rfq serve`` process for the browser tests: simulated desks whose quotes arrive
one by one inside a short window, so a browser can watch the ladder fill up."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.serve_kit import users_toml

USERS = {"alice": "trader", "carol": "approver", "dave": "compliance", "erin": "admin"}
TOKENS = {name: f"{name}-browser-token-0123456789" for name in USERS}
# desk-a answers first and best; desk-b later and wider; desk-c quotes off-market (rejected
# by the mandate's price tolerance); desk-d never answers, so the window runs to its end.
DEALERS = {
    "desk-a": 'latency_ms = 300\nspread_bps = "20"\n',
    "desk-b": 'latency_ms = 900\nspread_bps = "40"\nskew_bps = "5"\n',
    "desk-c": 'latency_ms = 1500\nspread_bps = "700"\n',
    "desk-d": "latency_ms = 300\nsilence_rate = 1.0\n",
}
TIMEOUT_MS = 20_000  # generous: other test suites share this 2-core machine
SHOTS = "/tmp/rfq-web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def write_config(tmp_path: Path, dealers_params: dict[str, str] | None = None,
                 engine: str = "") -> Path:
    desks = dealers_params or DEALERS
    users = users_toml(USERS, TOKENS)
    credit = "".join(f'{d} = {{ credit_limit = "1000000000" }}\n' for d in desks)
    dealers = "".join(
        f'[[dealers]]\nid = "{d}"\nkind = "simulated"\n[dealers.simulated]\n{params}'
        f"latency_jitter_ms = 0\nquote_validity_ms = 60000\nseed = {i}\n"  # valid past any window
        for i, (d, params) in enumerate(desks.items()))
    path = tmp_path / "rfq.toml"
    path.write_text(f"""
[engine]
{engine}
[store]
url = "sqlite+aiosqlite:///{tmp_path}/web.db"
[logging]
json = true
[api]
port = 0
{users}
[market]
spot = {{ BTC = "40000" }}
vol = {{ BTC = "0.5" }}
rate = "0.05"
hashprice = "55"
[mandates.treasury]
underlyings = ["BTC", "HASHPRICE"]
instruments = ["future", "option", "hashprice_ndf"]
max_tenor_days = 200
min_quotes = 2
price_tolerance_bps = "250"
approval_threshold = "10000000"
[mandates.treasury.dealers]
{credit}
{dealers}""")
    return path


class Server:
    def __init__(self, base: str, proc: subprocess.Popen[str], log: Path) -> None:
        self.base = base
        self.proc = proc
        self.log = log


@pytest.fixture
def rfq_server(tmp_path: Path) -> Iterator[Server]:
    """``rfq serve`` on a free port; SIGTERM at the end (it must exit 0)."""
    yield from serve(tmp_path, write_config(tmp_path))


def serve(tmp_path: Path, config: Path) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("RFQ_TEST_SKIP_BROWSER") == "1":
            pytest.skip("RFQ_TEST_SKIP_BROWSER=1")
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does), or set "
                    "RFQ_TEST_SKIP_BROWSER=1 to skip the browser tests")
    log = tmp_path / "serve.stderr"
    with log.open("w") as err:  # a file, not a pipe: a long test must never block on the log
        proc = subprocess.Popen(
            [sys.executable, "-m", "rfq_engine.cli.main", "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # tolerant: a busy 2-core CI
        line = proc.stdout.readline() if ready else ""  # printed once it listens
        assert line.startswith("rfq serve listening on http://"), (line, log.read_text()[-2000:])
        yield Server(line.split(" on ")[1].split(",")[0].strip(), proc, log)
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        assert code == 0, log.read_text()[-2000:]


def login(page: Any, user: str) -> None:
    page.get_by_test_id("login-token").fill(TOKENS[user])
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("user-badge").filter(has_text=user).wait_for()


@contextmanager
def browser_page(base: str, user: str | None = None, *, timeout_ms: float = TIMEOUT_MS,
                 width: int = 1440, height: int = 1000,
                 console_errors: bool = False) -> Iterator[tuple[Any, list[str]]]:
    """Debian's Chromium (Playwright, no browser download) on ``base``, signed in as ``user``:
    the page and the list its errors are collected in (uncaught page errors, and with
    ``console_errors`` the console's errors: a CSP violation is one). The test asserts the
    list; the browser is closed at the end."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            if console_errors:
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type == "error" else None)
            page.goto(base + "/")
            if user is not None:
                login(page, user)
            yield page, problems
        finally:
            browser.close()
