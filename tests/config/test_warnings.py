"""``config_warnings`` (``rfq config check``, ``rfq serve`` at start): what validates but
will not work as meant. The issue's case first: a 5 s default window against simulated
desks whose quotes last 3 s, so one silent desk makes every RFQ end not filled."""

from __future__ import annotations

import asyncio
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.api.auth import hash_token
from rfq_engine.cli.main import main
from rfq_engine.config import (
    DEMO_TOKEN,
    DEMO_TOKEN_SHA256,
    NO_USERS,
    config_warnings,
    load_config,
    parse_config,
)
from rfq_engine.domain import RfqSpec, RfqState
from rfq_engine.wiring import open_app
from tests.api.conftest import config_data, rfq_body

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "rfq.example.toml"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def example(**replace: str) -> dict[str, Any]:
    text = EXAMPLE.read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return tomllib.loads(text)


def window_warnings(data: dict[str, Any]) -> list[str]:
    return [w for w in config_warnings(parse_config(data), now=NOW) if "outlives" in w]


def test_the_issue_case_warns_a_5s_window_against_3s_quotes() -> None:
    """The example config as the issue found it: no quote_validity_ms (3 s by default)."""
    data = example(**{"quote_validity_ms = 10000  # a quote outlives the 5 s window and "
                      "last look\n": ""})
    warnings = window_warnings(data)
    assert len(warnings) == 2  # the engine's default window, and the hedge program's
    engine, program = warnings
    assert engine.startswith("mandates.treasury: engine.default_window_ms = 5000 outlives")
    assert program.startswith("mandates.treasury: programs.monthly-future.window_ms = 5000")
    for desk in ("desk-a", "desk-b", "desk-c"):
        assert f"{desk} (valid 3000 ms" in engine
    assert "when one desk stays silent" in engine and "ends not filled" in engine
    assert "quote_validity_ms" in engine  # says what to change


def test_the_example_config_warns_only_about_its_demo_token() -> None:
    warnings = config_warnings(load_config(EXAMPLE), now=NOW)
    assert len(warnings) == 1 and "demo token" in warnings[0]
    assert DEMO_TOKEN not in warnings[0]  # not repeated into every log


def test_the_example_config_has_the_documented_demo_user() -> None:
    config = load_config(EXAMPLE)
    (demo,) = config.api.users
    assert demo.name == "demo" and demo.roles == ["admin"]
    assert demo.token_hashes == (hash_token(DEMO_TOKEN),) == (DEMO_TOKEN_SHA256,)
    assert config.api.host == "127.0.0.1"
    readme = (ROOT / "README.md").read_text()
    assert DEMO_TOKEN in readme and "demo-only" in readme
    assert "rfq api new-token" in readme


def test_a_window_the_quotes_outlive_is_fine_and_deadline_is_named() -> None:
    data = example(**{"default_window_ms = 5000": "default_window_ms = 2000",
                      "window_ms = 5000 ": "window_ms = 2000 "})
    assert window_warnings(data) == []
    tight = example(**{"min_quote_validity_ms = 100": "min_quote_validity_ms = 9900"})
    (engine, _) = window_warnings(tight)
    assert "desk-a (valid 10000 ms from about 250 ms)" in engine
    deadline = example(**{"max_hedge_ratio = \"0.8\"": "max_hedge_ratio = \"0.8\"\n"
                          "close_policy = \"deadline\"",
                          "quote_validity_ms = 10000": "quote_validity_ms = 3000"})
    assert "always runs to its end (close_policy deadline)" in window_warnings(deadline)[0]


def test_users_with_expired_or_expiring_tokens_and_no_users(tmp_path: Path) -> None:
    data = config_data(tmp_path)
    users = data["api"]["users"]
    users[0]["expires_at"] = NOW - timedelta(hours=1)
    users[1]["expires_at"] = NOW + timedelta(days=3)
    users[2]["expires_at"] = NOW + timedelta(days=300)
    warnings = config_warnings(parse_config(data), now=NOW)
    assert any(w.startswith("api.users: alice's tokens expired at") for w in warnings)
    assert any(w.startswith("api.users: bob's tokens expire at") for w in warnings)
    assert not any("carol" in w for w in warnings)
    data["api"]["users"] = []
    assert NO_USERS in config_warnings(parse_config(data), now=NOW)


def test_config_check_prints_the_warnings_and_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text().replace(
        "quote_validity_ms = 10000  # a quote outlives the 5 s window and last look\n", "")
    path = tmp_path / "rfq.toml"
    path.write_text(text)
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok (3 dealers")
    assert re.search(rf"^{re.escape(str(path))}: warning: mandates\.treasury: "
                     r"engine\.default_window_ms = 5000 outlives", err, re.M)


@pytest.mark.parametrize("validity, expected", [(300, RfqState.NOT_FILLED),
                                                (3000, RfqState.FILLED)])
async def test_what_the_warning_says_happens(tmp_path: Path, validity: int,
                                             expected: RfqState) -> None:
    """A window of 600 ms, quotes valid for 300 ms, one silent desk: the window runs to its
    end, every quote has expired, and the RFQ ends not filled. Quotes that outlive the
    window fill."""
    data = config_data(tmp_path)
    data["engine"]["default_window_ms"] = 600
    for dealer in data["dealers"]:
        dealer["simulated"]["quote_validity_ms"] = validity
    data["dealers"][2]["simulated"]["silence_rate"] = 1.0
    config = parse_config(data)
    assert bool(window_warnings(data)) is (expected is RfqState.NOT_FILLED)
    body = rfq_body(requester="alice")
    del body["window_ms"]
    app = await open_app(config)
    try:
        spec = RfqSpec.from_dict(body, default_window_ms=config.engine.default_window_ms)
        rfq_id = await app.engine.submit(spec)
        assert await asyncio.wait_for(app.engine.wait(rfq_id), 10) is expected
    finally:
        await app.close()
