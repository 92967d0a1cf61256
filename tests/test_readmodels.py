"""The readers of the audit log take typed events and skip, with a warning, a payload that
does not decode (``rfq_engine.readmodels.events``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs

from rfq_engine.domain import canonical_json
from rfq_engine.domain.events import EventType, QuoteDeclined, UnknownEvent
from rfq_engine.engine import EngineEvent
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.readmodels.events import listened, typed, typed_events
from rfq_engine.readmodels.scorecard import dealer_scorecards
from rfq_engine.store.events import AuditEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def stored(seq: int, type_: str, payload: dict[str, Any], actor: str = "engine") -> AuditEvent:
    return AuditEvent(seq, T0 + timedelta(milliseconds=seq), "r1", type_, actor,
                      canonical_json(payload), "0" * 64, "0" * 64)


def quote(seq: int, dealer: str, **overrides: Any) -> AuditEvent:
    payload = {"dealer_id": dealer, "quote_id": f"q{seq}", "bid": "100", "ask": None,
               "quantity": "1", "valid_until": "2026-03-02T09:01:00.000000Z",
               "received_at": "2026-03-02T09:00:00.000000Z", "msg_id": f"m{seq}", **overrides}
    return stored(seq, EventType.QUOTE_RECEIVED, payload, actor=dealer)


def events() -> list[AuditEvent]:
    return [
        stored(1, EventType.RFQ_STATE_CHANGED, {"from": "created", "to": "open", "reason": "sent"}),
        stored(2, EventType.RFQ_SENT, {"deadline": "2026-03-02T09:00:05.000000Z", "window_ms": 5000,
                                       "sent": ["d1", "d2"], "failed": {}}),
        quote(3, "d1"),
        quote(4, "d2", quantity="lots"),  # not a decimal string: does not decode
        stored(5, "desk.note", {"text": "a type this code does not know"}),
    ]


def test_a_payload_that_does_not_decode_is_skipped_with_a_warning() -> None:
    with capture_logs() as logs:
        pairs = list(typed_events(events()))
    assert [s.seq for s, _ in pairs] == [1, 2, 3, 5]
    assert isinstance(pairs[-1][1], UnknownEvent)
    assert [(log["event"], log["seq"], log["type"]) for log in logs] == [
        ("audit.event_not_decoded", 4, "quote.received")]


def test_the_decision_record_keeps_the_bad_event_in_its_timeline_only() -> None:
    record = build_decision_record(events())
    assert [e["seq"] for e in record["timeline"]] == [1, 2, 3, 4, 5]
    assert [q["dealer_id"] for q in record["quotes"]] == ["d1"]
    assert record["quotes"][0]["bid"] == "100" and record["dealers_asked"] == ["d1", "d2"]


def test_scorecards_count_what_decodes() -> None:
    cards = dealer_scorecards(events())
    assert (cards["d1"].asked, cards["d1"].responded) == (1, 1)
    assert (cards["d2"].asked, cards["d2"].responded) == (1, 0)


def test_a_listener_given_no_typed_event_decodes_the_payload() -> None:
    declined = QuoteDeclined("d1", "no axe", "m1")
    payload = {"dealer_id": "d1", "reason": "no axe", "msg_id": "m1"}
    assert listened(EngineEvent("r1", declined.TYPE, "d1", payload, declined)) is declined
    assert listened(EngineEvent("r1", declined.TYPE, "d1", payload)) == declined
    assert typed(EventType.FILL_RECORDED, {"price": Decimal(1)}) is None
