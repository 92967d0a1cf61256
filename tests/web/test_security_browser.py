"""The web UI under its Content-Security-Policy in a real browser: every page works and
nothing is refused (no inline script or style, nothing from elsewhere), the page cannot be
framed, and the CSV export (a blob: download) still works. The sign-in page says why a
token is refused (expired; too many failures from this address)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.api.auth import hash_token
from rfq_engine.api.security import CSP
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, TOKENS, Server, serve, write_config

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000
WATCH = """() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation',
    (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
}"""


def test_every_page_works_under_the_policy_and_cannot_be_framed(rfq_server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900},
                                    accept_downloads=True)
            page.set_default_timeout(TIMEOUT_MS)
            page.add_init_script(f"({WATCH})()")
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}")
                    if m.type == "error" else None)
            response = page.goto(rfq_server.base + "/")
            assert response is not None and response.headers["content-security-policy"] == CSP
            page.get_by_test_id("login-token").fill(TOKENS["erin"])
            page.get_by_test_id("login-submit").click()
            page.get_by_test_id("user-badge").filter(has_text="erin").wait_for()
            expect(page.get_by_test_id("stream-status")).to_have_attribute("data-state", "live")
            page.get_by_test_id("nav-compliance").click()
            expect(page.get_by_test_id("chain-status")).to_be_visible()
            with page.expect_download() as download:
                page.get_by_test_id("export-csv").click()
            assert download.value.suggested_filename.endswith(".csv")
            page.get_by_test_id("nav-scorecards").click()
            expect(page.get_by_test_id("scorecards")).to_be_visible()
            page.get_by_test_id("nav-scenarios").click()
            page.get_by_test_id("scenario-run").click()
            expect(page.get_by_test_id("scenario-result").locator("svg").first).to_be_visible()
            page.get_by_test_id("nav-blotter").click()
            assert page.evaluate("window.__violations") == []
            assert not problems, problems

            # another site framing the UI (clickjacking) gets nothing: frame-ancestors 'none'
            framer = browser.new_page()
            refused: list[str] = []
            framer.on("console", lambda m: refused.append(m.text))
            framer.set_content(f'<iframe id="f" src="{rfq_server.base}/"></iframe>')
            framer.wait_for_timeout(1500)
            frame: Any = framer.frame_locator("#f")
            assert frame.locator("[data-testid=login-form]").count() == 0
            assert any("frame-ancestors" in text for text in refused), refused
        finally:
            browser.close()


EXPIRED = "olga-expired-token-Hq2w8Zr4"


def test_the_sign_in_page_says_why_a_token_is_refused(tmp_path: Path) -> None:
    """An expired token says so; too many failures from one address say when to retry."""
    from playwright.sync_api import expect, sync_playwright

    config = write_config(tmp_path)
    olga = (f'[[api.users]]\nname = "olga"\nroles = ["trader"]\n'
            f'token_sha256 = "{hash_token(EXPIRED)}"\nexpires_at = 2020-01-01T00:00:00Z\n')
    config.write_text(config.read_text().replace("[api]\n", "[api]\nauth_failures = 3\n", 1)
                      .replace("[market]", olga + "[market]", 1))
    with contextmanager(serve)(tmp_path, config) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.base + "/")
            error = page.get_by_test_id("login-error")
            page.get_by_test_id("login-token").fill(EXPIRED)
            page.get_by_test_id("login-submit").click()
            expect(error).to_contain_text("expired", timeout=TIMEOUT_MS)
            for _ in range(2):
                page.get_by_test_id("login-token").fill("not-a-valid-token-000000")
                page.get_by_test_id("login-submit").click()
                expect(error).to_contain_text("not recognised", timeout=TIMEOUT_MS)
            page.get_by_test_id("login-token").fill(TOKENS["alice"])  # blocked even so
            page.get_by_test_id("login-submit").click()
            expect(error).to_contain_text("too many failed", timeout=TIMEOUT_MS)
        finally:
            browser.close()
