"""Audit events: the catalogue of types, the event record, and the hash chain.

Every event is one row: a global ``seq`` assigned by the single writer, a UTC
microsecond ``ts``, the ``rfq_id`` (None for engine-wide events), a past-tense ``type``,
the ``actor`` (user, dealer id, ``engine`` or ``program:<name>``), a canonical-JSON
``payload``, ``prev_hash`` and ``hash``:

    hash = sha256(prev_hash "\\n" canonical_json([seq, ts, rfq_id or "", type, actor])
                  "\\n" payload_json)

The first event's ``prev_hash`` is 64 zeros. Editing any field of any row changes its
hash; the next row's ``prev_hash`` then no longer matches, so ``verify`` names the first
bad ``seq``. Deleting the newest rows leaves a valid but shorter chain: the writer also
records the chain head in a checkpoint kept outside the database (see ``checkpoint.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rfq_engine.domain import canonical_json, format_ts

__all__ = ["GENESIS_HASH", "AuditEvent", "EventType", "chain_hash"]

GENESIS_HASH = "0" * 64


class EventType(StrEnum):
    """Payload keys are listed per type; decimals are strings, times are ``...Z`` strings."""

    # {"spec": RfqSpec.to_dict(), "notional": str, "reference": {...}|None}
    RFQ_SUBMITTED = "rfq.submitted"
    # {"from": state, "to": state, "reason": str}
    RFQ_STATE_CHANGED = "rfq.state_changed"
    # {"stage": "pre_trade", "passed": bool, "verdicts": [{"rule", "passed", "reason"}]}
    MANDATE_CHECKED = "mandate.checked"
    # {"notional": str, "reason": str, "expires_at": ts}
    APPROVAL_REQUESTED = "approval.requested"
    # {"approver": str}
    APPROVAL_GRANTED = "approval.granted"
    # {"approver": str, "reason": str}
    APPROVAL_REFUSED = "approval.refused"
    # {"deadline": ts, "window_ms": int, "sent": [dealer_id], "failed": {dealer_id: reason}}
    RFQ_SENT = "rfq.sent"
    # {"dealer_id", "quote_id", "bid"|None, "ask"|None, "quantity", "valid_until", "received_at",
    #  "msg_id"}
    QUOTE_RECEIVED = "quote.received"
    # {"dealer_id", "quote_id"|None, "msg_id"|None, "reason", "stage": "receive"|"rank"|"award",
    #  plus the quote fields when the quote could be parsed}
    QUOTE_REJECTED = "quote.rejected"
    # {"dealer_id", "reason", "msg_id"}
    QUOTE_DECLINED = "quote.declined"
    # {"dealer_id"|None, "reason", "msg_id"|None, "raw"|None}:
    #  inbound we could not attribute or accept
    MESSAGE_REJECTED = "message.rejected"
    # {"side": "bid"|"ask", "reference": {...}|None, "min_quotes": {"rule","passed","reason"},
    #  "ranking": [{"rank", "dealer_id", "quote_id", "price", "quantity", "received_at",
    #               "verdicts": [...]}],
    #  "rejected": [{"dealer_id", "quote_id", "price"|None, "reason", "verdicts": [...]}]}
    QUOTES_RANKED = "quotes.ranked"
    # {"execution_id", "dealer_id", "quote_id", "side", "price", "quantity", "confirm_by", "rank",
    #  "reason", "cover_price"|None}
    AWARD_DECIDED = "award.decided"
    # {"execution_id", "dealer_id", "error"|None}
    AWARD_SENT = "award.sent"
    # {"execution_ids": [execution_id], "reference": {...}}: the package reference when the
    # award(s) were made, priced off the hot path right after the decision was durable (TCA)
    AWARD_REFERENCE = "award.reference_recorded"
    # {"execution_id", "dealer_id", "price", "quantity", "dealer_trade_id", "msg_id"|None,
    #  "source": "dealer"|"reconciled", "attempts"?: int}
    #  (``reconciled``: the dealer's answer to ``query_execution`` after an unknown outcome)
    EXECUTION_CONFIRMED = "execution.confirmed"
    # {"execution_id", "dealer_id", "reason", "msg_id"|None, "timeout": bool,
    #  "source"?: "dealer"|"reconciled"|"undelivered", "attempts"?: int}
    EXECUTION_REJECTED = "execution.rejected"
    # {"execution_id", "dealer_id", "reason", "lookup": {"key", "can_query",
    #  "not_found_proves_absent"}, "reconcile_by": ts}: the award's outcome is unknown (no
    #  answer by confirm_by, a send that timed out, a restart); it is being asked about, and
    #  nothing else is awarded for its quantity meanwhile
    EXECUTION_UNKNOWN = "execution.unknown"
    # {"execution_id", "dealer_id", "reason", "attempts": int, "last_lookup": state|None,
    #  "last_error"|None}: reconciliation could not settle it by reconcile_by; the RFQ waits
    #  ``unresolved`` with the exposure reserved until the dealer answers or a person resolves it
    EXECUTION_UNRESOLVED = "execution.unresolved"
    # {"execution_id", "dealer_id", "executed": bool, "quantity"|None, "price"|None,
    #  "dealer_trade_id", "evidence", "resolved_by"}: a person's decision on an unknown outcome
    EXECUTION_RESOLVED = "execution.resolved"
    # {"closed_at": ts, "deadline": ts, "policy": "deadline"|"all_answered", "reason"}:
    #  when the response window actually closed
    WINDOW_CLOSED = "window.closed"
    # {"fill_id", "execution_id", "dealer_id", "mandate", "price", "quantity", "notional",
    #  "dealer_trade_id", "last_date"|None}
    FILL_RECORDED = "fill.recorded"
    # {"reason"}
    CANCEL_REQUESTED = "rfq.cancel_requested"
    # {"reason"}: the engine stopped while the RFQ waited for approval; it stays pending
    RFQ_PARKED = "rfq.parked"
    # {"outcome", "notified": [dealer_id], "failed": {dealer_id: reason}, "reason"?: str}
    #  (``reason`` only when sent by recovery, for an RFQ that ended before a crash)
    OUTCOME_SENT = "rfq.outcome_sent"
    # {"halted": bool, "reason"}: the admin kill switch (halt: refuse new RFQs, cancel open ones)
    KILL_SWITCH = "engine.kill_switch"
    # {"rfqs": [rfq_id], "outcomes_sent": [rfq_id]}: the RFQs a restart found non-terminal
    #  and took over, and the ended ones whose outcome it sent
    ENGINE_RECOVERED = "engine.recovered"
    # {"program", "period", "trigger": "schedule"|"catch_up"|"manual", "scheduled_for": ts|None,
    #  "forecast": {...}, "spot", "position": {instrument: qty}, "held", "target", "hedge_ratio",
    #  "action", "rfqs": [{"kind", "client_rfq_id", "rfq_id", "existing"}], "proposed": [spec],
    #  "approved_by"|None, "dry_run": false, "reasons": [str], "error"|None}: a hedge program's
    #  decision for a period (actor "program:<name>")
    PROGRAM_DECIDED = "program.decided"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    ts: datetime
    rfq_id: str | None
    type: str
    actor: str
    payload_json: str
    prev_hash: str
    hash: str

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload_json)
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON form for export: the payload as an object, ts as ``...Z``."""
        return {
            "seq": self.seq,
            "ts": format_ts(self.ts),
            "rfq_id": self.rfq_id,
            "type": self.type,
            "actor": self.actor,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def chain_hash(
    prev_hash: str,
    seq: int,
    ts: datetime | str,
    rfq_id: str | None,
    type_: str,
    actor: str,
    payload_json: str,
) -> str:
    ts_text = ts if isinstance(ts, str) else format_ts(ts)
    header = canonical_json([seq, ts_text, rfq_id or "", type_, actor])
    data = f"{prev_hash}\n{header}\n{payload_json}".encode()
    return hashlib.sha256(data).hexdigest()
