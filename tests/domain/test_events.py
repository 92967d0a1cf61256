"""The typed audit events: every payload today's writers produce (a fixture written by the
code before the events were typed) decodes to its class and encodes back byte for byte;
the catalogue in docs/audit.md is the one generated from the classes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from rfq_engine.domain.events import (
    EVENT_CLASSES,
    EventDecodeError,
    EventType,
    ExecutionConfirmed,
    RfqParked,
    RfqStateChanged,
    UnknownEvent,
    catalogue_markdown,
    decode,
    encode,
)
from rfq_engine.domain.values import utc_now

FIXTURE = Path(__file__).parent / "fixtures" / "events-2026-12-02.jsonl"
AUDIT_MD = Path(__file__).parents[2] / "docs" / "audit.md"
BEGIN, END = "<!-- catalogue: generated -->", "<!-- end of catalogue -->"


def _stored() -> list[dict[str, object]]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("stored", _stored(), ids=lambda e: str(e["type"]))
def test_payloads_written_before_typing_decode_and_encode_back_unchanged(stored: dict) -> None:
    event = decode(stored["type"], stored["payload"])
    assert not isinstance(event, UnknownEvent)
    assert type(event) is EVENT_CLASSES[stored["type"]]
    assert encode(event) == stored["payload"]


def test_the_fixture_covers_every_event_type() -> None:
    assert {e["type"] for e in _stored()} == set(EVENT_CLASSES) == {t.value for t in EventType}


def test_typed_fields_are_typed() -> None:
    confirmed = decode("execution.confirmed", {
        "execution_id": "e", "dealer_id": "d", "price": "40000.5", "quantity": "2",
        "dealer_trade_id": "T", "msg_id": None, "source": "reconciled", "attempts": 3})
    assert isinstance(confirmed, ExecutionConfirmed)
    assert (confirmed.price, confirmed.attempts) == (Decimal("40000.5"), 3)
    changed = decode("rfq.state_changed", {"from": "open", "to": "awarding", "reason": "x"})
    assert changed == RfqStateChanged("open", "awarding", "x")
    assert encode(RfqParked("stopping")) == {"reason": "stopping"}  # optional keys omitted
    assert encode(RfqParked("stopping", ("e-1",))) == {"reason": "stopping", "execution_ids": ["e-1"]}


def test_a_payload_that_does_not_fit_is_refused_with_the_key() -> None:
    with pytest.raises(EventDecodeError, match="price"):
        decode("execution.confirmed", {"execution_id": "e", "dealer_id": "d", "price": 1.5,
                                       "quantity": "2"})
    with pytest.raises(EventDecodeError, match="missing execution_id"):
        decode("award.sent", {"dealer_id": "d"})
    unknown = decode("future.thing", {"a": 1})
    assert isinstance(unknown, UnknownEvent) and unknown.TYPE == "future.thing"


def test_message_rejected_keeps_its_context_keys() -> None:
    payload = {"dealer_id": "d", "reason": "unknown rfq_id", "msg_id": "m", "claimed_rfq_id": "r",
               "type": "Quote", "received_at": utc_now().isoformat()}
    assert encode(decode("message.rejected", payload)) == payload


def test_docs_audit_md_holds_the_generated_catalogue() -> None:
    text = AUDIT_MD.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/audit.md lost its catalogue markers"
    written = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert written == catalogue_markdown().strip(), (
        "docs/audit.md is out of date: run `python -m rfq_engine.domain.events --write-docs`")
