"""``rfq_engine.logging``: JSON lines, rfq_id on every line of an RFQ, secrets redacted."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog

from rfq_engine.logging import REDACTED, bind_rfq, configure_logging, get_logger

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_utc_microsecond_timestamps():
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    get_logger("t").info("hello", n=1)
    [line] = lines(out)
    assert line["event"] == "hello" and line["n"] == 1 and line["level"] == "info"
    assert TS.match(str(line["timestamp"])), line["timestamp"]


def test_bound_rfq_id_is_on_every_line_of_the_rfq_and_only_those():
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    log = get_logger("engine")
    log.info("before")
    with bind_rfq("rfq-1"):
        log.info("opened")
        logging.getLogger("aiomqtt").warning("stdlib line")  # a library's line too
        log.info("awarded", dealer_id="d1")
    with structlog.contextvars.bound_contextvars(rfq_id="rfq-2"):
        log.info("other")
    log.info("after")
    got = [(line["event"], line.get("rfq_id")) for line in lines(out)]
    assert got == [
        ("before", None),
        ("opened", "rfq-1"),
        ("stdlib line", "rfq-1"),
        ("awarded", "rfq-1"),
        ("other", "rfq-2"),
        ("after", None),
    ]


async def test_rfq_id_follows_the_rfq_into_its_tasks():
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    log = get_logger("engine")

    async def collect() -> None:
        await asyncio.sleep(0)
        log.info("quote")

    with bind_rfq("rfq-9"):
        task = asyncio.create_task(collect())
    log.info("outside")
    await task
    assert {line["event"]: line.get("rfq_id") for line in lines(out)} == {
        "outside": None,
        "quote": "rfq-9",
    }


def test_secrets_are_redacted_at_any_depth():
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    get_logger().info(
        "dealer connected",
        dealer_id="d1",
        hmac_secret="s3cret",
        api_key="AK",
        password="pw",
        token="tk",
        config={"mqtt": {"password": "pw2", "host": "broker"}, "keys": ["a"]},
        monkey="not a secret",
        keyword="kw",
        private_side="sell",
        privateKey="pk",
        rfq_id="r1",
    )
    [line] = lines(out)
    for key in ("hmac_secret", "api_key", "password", "token", "privateKey"):
        assert line[key] == REDACTED
    assert line["config"] == {"mqtt": {"password": REDACTED, "host": "broker"}, "keys": REDACTED}
    assert line["monkey"] == "not a secret" and line["keyword"] == "kw"
    assert line["dealer_id"] == "d1" and line["rfq_id"] == "r1" and line["private_side"] == "sell"
    assert "s3cret" not in out.getvalue() and "pw2" not in out.getvalue()


def test_stdlib_extra_secrets_are_redacted_too():
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    logging.getLogger("lib").warning("connecting with %s", "user", extra={"password": "pw"})
    [line] = lines(out)
    assert line["event"] == "connecting with user" and line["password"] == REDACTED


def test_idempotent_and_reconfigurable():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(json=True, stream=first)
    configure_logging(json=True, stream=first)
    get_logger().info("once")
    assert len(lines(first)) == 1
    configure_logging(level="WARNING", json=True, stream=second)
    get_logger().info("filtered")
    get_logger().warning("kept")
    assert len(lines(first)) == 1
    assert [line["event"] for line in lines(second)] == ["kept"]


def test_console_when_forced_or_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    configure_logging(stream=tty)
    get_logger().info("human", rfq_id="r1")
    text = tty.getvalue()
    assert "human" in text and not text.lstrip().startswith("{")

    forced = Tty()
    configure_logging(json=True, stream=forced)
    get_logger().info("machine")
    assert json.loads(forced.getvalue())["event"] == "machine"

    plain = io.StringIO()
    configure_logging(json=False, stream=plain)
    get_logger().info("plain")
    assert "plain" in plain.getvalue() and "\x1b[" not in plain.getvalue()


def test_not_a_tty_defaults_to_json():
    out = io.StringIO()
    configure_logging(stream=out)
    get_logger().info("auto")
    assert lines(out)[0]["event"] == "auto"


def test_exceptions_render_as_structured_tracebacks():
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger().exception("failed")
    [line] = lines(out)
    assert line["event"] == "failed" and "boom" in json.dumps(line["exception"])


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging(level="LOUD", stream=io.StringIO())
