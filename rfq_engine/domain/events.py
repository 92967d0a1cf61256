"""The audit events, typed: one frozen dataclass per event type, past tense.

Writers build these and append them (``Services.audit``); readers decode stored events
into them (``decode``) and match on the class. The payload codec is ``eventcodec``; the
catalogue in docs/audit.md is generated from this module (``catalogue_markdown``) and a
test keeps the two equal.

A payload written before these classes existed decodes unchanged: every field a past
writer did not always write has a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal, get_args

from rfq_engine.domain.eventcodec import (
    OMIT_NONE,
    REST,
    EventDecodeError,
    Json,
    decode_payload,
    encode_payload,
    field_specs,
    key,
)

__all__ = [
    "EVENT_CLASSES",
    "AnyEvent",
    "ApprovalGranted",
    "ApprovalRefused",
    "ApprovalRequested",
    "AwardDecided",
    "AwardReferenceRecorded",
    "AwardSent",
    "CancelRequested",
    "CollateralPosted",
    "EngineRecovered",
    "EventDecodeError",
    "EventType",
    "ExecutionConfirmed",
    "ExecutionRejected",
    "ExecutionResolved",
    "ExecutionUnknown",
    "ExecutionUnresolved",
    "FillRecorded",
    "KillSwitchSet",
    "MandateChecked",
    "MessageRejected",
    "OutcomeSent",
    "ProductionRealized",
    "ProgramDecided",
    "QuoteDeclined",
    "QuoteReceived",
    "QuoteRejected",
    "QuotesRanked",
    "RfqParked",
    "RfqSent",
    "RfqStateChanged",
    "RfqSubmitted",
    "RiskAlerted",
    "UnknownEvent",
    "WindowClosed",
    "catalogue_markdown",
    "decode",
    "encode",
]


class EventType(StrEnum):
    RFQ_SUBMITTED = "rfq.submitted"
    RFQ_STATE_CHANGED = "rfq.state_changed"
    MANDATE_CHECKED = "mandate.checked"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_GRANTED = "approval.granted"
    APPROVAL_REFUSED = "approval.refused"
    RFQ_SENT = "rfq.sent"
    QUOTE_RECEIVED = "quote.received"
    QUOTE_REJECTED = "quote.rejected"
    QUOTE_DECLINED = "quote.declined"
    MESSAGE_REJECTED = "message.rejected"
    QUOTES_RANKED = "quotes.ranked"
    WINDOW_CLOSED = "window.closed"
    AWARD_DECIDED = "award.decided"
    AWARD_SENT = "award.sent"
    AWARD_REFERENCE = "award.reference_recorded"
    EXECUTION_CONFIRMED = "execution.confirmed"
    EXECUTION_REJECTED = "execution.rejected"
    EXECUTION_UNKNOWN = "execution.unknown"
    EXECUTION_UNRESOLVED = "execution.unresolved"
    EXECUTION_RESOLVED = "execution.resolved"
    FILL_RECORDED = "fill.recorded"
    CANCEL_REQUESTED = "rfq.cancel_requested"
    RFQ_PARKED = "rfq.parked"
    OUTCOME_SENT = "rfq.outcome_sent"
    KILL_SWITCH = "engine.kill_switch"
    ENGINE_RECOVERED = "engine.recovered"
    PROGRAM_DECIDED = "program.decided"
    RISK_ALERTED = "risk.alerted"
    COLLATERAL_POSTED = "collateral.posted"
    PRODUCTION_REALIZED = "production.realized"


T = EventType
ConfirmSource = Literal["dealer", "reconciled"]
RejectSource = Literal["dealer", "reconciled", "undelivered"]


@dataclass(frozen=True, slots=True)
class RfqSubmitted:
    """Accepted: the full spec (with the private side), notional and reference at submit."""

    TYPE: ClassVar[str] = T.RFQ_SUBMITTED
    VERSION: ClassVar[int] = 1
    spec: Json
    notional: Decimal | None = None
    reference: Json = None
    reference_problem: str | None = None


@dataclass(frozen=True, slots=True)
class RfqStateChanged:
    """A transition of the state machine (``domain.states``), with its reason."""

    TYPE: ClassVar[str] = T.RFQ_STATE_CHANGED
    VERSION: ClassVar[int] = 1
    from_state: str = field(metadata=key("from"))
    to: str
    reason: str


@dataclass(frozen=True, slots=True)
class MandateChecked:
    """Every pre-trade rule's verdict ``{"rule", "passed", "reason"}``."""

    TYPE: ClassVar[str] = T.MANDATE_CHECKED
    VERSION: ClassVar[int] = 1
    stage: str
    passed: bool
    verdicts: Json


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """Above the mandate's threshold (or asked for): waiting for a second person."""

    TYPE: ClassVar[str] = T.APPROVAL_REQUESTED
    VERSION: ClassVar[int] = 1
    notional: Decimal | None = None
    reason: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalGranted:
    """The second person approved (actor: that person); durable before the call returned."""

    TYPE: ClassVar[str] = T.APPROVAL_GRANTED
    VERSION: ClassVar[int] = 1
    approver: str


@dataclass(frozen=True, slots=True)
class ApprovalRefused:
    """The second person refused, with the reason."""

    TYPE: ClassVar[str] = T.APPROVAL_REFUSED
    VERSION: ClassVar[int] = 1
    approver: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RfqSent:
    """``rfq.new`` went out: who was asked, the deadline, who could not be reached."""

    TYPE: ClassVar[str] = T.RFQ_SENT
    VERSION: ClassVar[int] = 1
    deadline: datetime
    window_ms: int
    sent: tuple[str, ...]
    failed: Json


@dataclass(frozen=True, slots=True)
class QuoteReceived:
    """A dealer's quote as it arrived (checked afterwards). `conversion` (optional, its own
    `version`): a premium quoted in a coin, converted at the venue's index (`domain.premium`):
    the coin premium, fee, all-in, index price, time and source behind `bid`/`ask`."""

    TYPE: ClassVar[str] = T.QUOTE_RECEIVED
    VERSION: ClassVar[int] = 1
    dealer_id: str
    quote_id: str
    bid: Decimal | None
    ask: Decimal | None
    quantity: Decimal
    valid_until: datetime
    received_at: datetime
    msg_id: str | None = None
    conversion: Json = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class QuoteRejected:
    """A quote refused at ``stage`` receive / rank / award, with the quote's fields."""

    TYPE: ClassVar[str] = T.QUOTE_REJECTED
    VERSION: ClassVar[int] = 1
    reason: str
    stage: str = "receive"
    dealer_id: str | None = None
    quote_id: str | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    quantity: Decimal | None = None
    valid_until: datetime | None = None
    received_at: datetime | None = None
    msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteDeclined:
    """A dealer declined (withdrawing any earlier quote)."""

    TYPE: ClassVar[str] = T.QUOTE_DECLINED
    VERSION: ClassVar[int] = 1
    dealer_id: str
    reason: str = ""
    msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """Inbound the engine could not act on (duplicate, unknown or closed RFQ, a confirm that
    does not match, a malformed, unsigned or spoofed message); ``context`` holds what the
    writer knew (``claimed_rfq_id``, ``raw``, ``execution_id``, ``type``...)."""

    TYPE: ClassVar[str] = T.MESSAGE_REJECTED
    VERSION: ClassVar[int] = 1
    reason: str
    dealer_id: str | None = None
    msg_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict, metadata=REST)


@dataclass(frozen=True, slots=True)
class QuotesRanked:
    """The ranking with every quote's verdicts, the rejected quotes, the min-quotes verdict."""

    TYPE: ClassVar[str] = T.QUOTES_RANKED
    VERSION: ClassVar[int] = 1
    side: str
    reference: Json
    min_quotes: Json
    ranking: Json
    rejected: Json


@dataclass(frozen=True, slots=True)
class WindowClosed:
    """When the response window actually closed, under which policy, and why."""

    TYPE: ClassVar[str] = T.WINDOW_CLOSED
    VERSION: ClassVar[int] = 1
    closed_at: datetime
    deadline: datetime | None
    policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class AwardDecided:
    """An award, durable before it is sent: rank, reason, cover price, ``confirm_by``."""

    TYPE: ClassVar[str] = T.AWARD_DECIDED
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    quote_id: str
    side: str
    price: Decimal
    quantity: Decimal
    confirm_by: datetime
    rank: int
    reason: str = ""
    cover_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AwardSent:
    """The award was handed to the transport; ``error`` when the send failed or outlived
    ``send_timeout_ms`` (its outcome is then unknown)."""

    TYPE: ClassVar[str] = T.AWARD_SENT
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AwardReferenceRecorded:
    """The package reference at award time, priced off the hot path (TCA)."""

    TYPE: ClassVar[str] = T.AWARD_REFERENCE
    VERSION: ClassVar[int] = 1
    execution_ids: tuple[str, ...]
    reference: Json


@dataclass(frozen=True, slots=True)
class ExecutionConfirmed:
    """The dealer executed: its confirm (``dealer``), or its answer to a lookup after an
    unknown outcome (``reconciled``, with the number of questions)."""

    TYPE: ClassVar[str] = T.EXECUTION_CONFIRMED
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    price: Decimal
    quantity: Decimal
    dealer_trade_id: str = ""
    msg_id: str | None = None
    source: ConfirmSource = "dealer"
    attempts: int | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class ExecutionRejected:
    """Not executed: an explicit reject, a lookup's reject (``reconciled``), a "not found"
    that the dealer's policy makes proof (``timeout``), or a send never taken."""

    TYPE: ClassVar[str] = T.EXECUTION_REJECTED
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    reason: str
    msg_id: str | None = None
    timeout: bool = False
    source: RejectSource | None = field(default=None, metadata=OMIT_NONE)
    attempts: int | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class ExecutionUnknown:
    """The outcome is unknown and being reconciled; nothing else is awarded meanwhile."""

    TYPE: ClassVar[str] = T.EXECUTION_UNKNOWN
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    reason: str
    lookup: Json
    reconcile_by: datetime


@dataclass(frozen=True, slots=True)
class ExecutionUnresolved:
    """Reconciliation could not settle it by ``reconcile_by``: the RFQ waits for the dealer
    or a person, with the exposure reserved."""

    TYPE: ClassVar[str] = T.EXECUTION_UNRESOLVED
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    reason: str
    attempts: int
    last_lookup: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionResolved:
    """A person's decision on an unknown outcome (actor: that person), with the evidence."""

    TYPE: ClassVar[str] = T.EXECUTION_RESOLVED
    VERSION: ClassVar[int] = 1
    execution_id: str
    dealer_id: str
    executed: bool
    evidence: str
    resolved_by: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    dealer_trade_id: str = ""
    was_unresolved: bool = False


@dataclass(frozen=True, slots=True)
class FillRecorded:
    """A trade: durable before the terminal state and the outcome to the dealers."""

    TYPE: ClassVar[str] = T.FILL_RECORDED
    VERSION: ClassVar[int] = 1
    fill_id: str
    execution_id: str
    dealer_id: str
    mandate: str
    price: Decimal
    quantity: Decimal
    notional: Decimal
    dealer_trade_id: str = ""
    last_date: date | None = None


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """A cancel, with its actor; awards in last look are still honoured."""

    TYPE: ClassVar[str] = T.CANCEL_REQUESTED
    VERSION: ClassVar[int] = 1
    reason: str


@dataclass(frozen=True, slots=True)
class RfqParked:
    """Left non-terminal when the engine stopped: waiting for approval, or with awards whose
    outcome is not known (``execution_ids``); resumed on restart."""

    TYPE: ClassVar[str] = T.RFQ_PARKED
    VERSION: ClassVar[int] = 1
    reason: str
    execution_ids: tuple[str, ...] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class OutcomeSent:
    """``rfq.closed`` went to the dealers; ``reason`` when recovery sent it."""

    TYPE: ClassVar[str] = T.OUTCOME_SENT
    VERSION: ClassVar[int] = 1
    outcome: str
    notified: tuple[str, ...]
    failed: Json
    reason: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class KillSwitchSet:
    """The admin kill switch: halted (refuse new RFQs, cancel open ones) or resumed."""

    TYPE: ClassVar[str] = T.KILL_SWITCH
    VERSION: ClassVar[int] = 1
    halted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EngineRecovered:
    """The RFQs a restart took over, and the ended ones whose outcome it sent."""

    TYPE: ClassVar[str] = T.ENGINE_RECOVERED
    VERSION: ClassVar[int] = 1
    rfqs: tuple[str, ...]
    outcomes_sent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProgramDecided:
    """A hedge program's decision for a period (actor ``program:<name>``)."""

    TYPE: ClassVar[str] = T.PROGRAM_DECIDED
    VERSION: ClassVar[int] = 1
    program: str
    period: str
    trigger: str
    action: str
    scheduled_for: datetime | None = None
    dry_run: bool = False
    strategy: str | None = None
    forecast: Json = None
    spot: Decimal | None = None
    position: Json = None
    held: Decimal | None = None
    target: Decimal | None = None
    hedge_ratio: Decimal | None = None
    rfqs: Json = None
    proposed: Json = None
    approved_by: str | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RiskAlerted:
    """A risk threshold crossed (``state`` raised) or back within it (cleared): the figure's
    ``kind`` (credit_usage, margin_usage, margin_call, liquidation_distance, coverage, liquidity,
    funding, collateral_short), its ``subject`` (a desk, a venue, a program, an instrument), its
    value against the threshold (actor ``risk``)."""

    TYPE: ClassVar[str] = T.RISK_ALERTED
    VERSION: ClassVar[int] = 1
    kind: str
    subject: str
    state: Literal["raised", "cleared"]
    message: str
    value: Decimal | None = None
    threshold: Decimal | None = None
    program: str | None = field(default=None, metadata=OMIT_NONE)
    period: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class CollateralPosted:
    """An operator's statement of the collateral now posted in total with a desk (`account` desk:
    a `[collateral.<dealer>]` agreement) or at a venue (venue: `[risk.venues.<dealer>]`),
    `amounts` by currency as decimal strings; the latest one per dealer replaces the config's
    figure, a correction is a later event (actor: that person)."""

    TYPE: ClassVar[str] = T.COLLATERAL_POSTED
    VERSION: ClassVar[int] = 1
    dealer: str
    account: Literal["desk", "venue"]
    amounts: Json
    posted_by: str
    note: str = ""
    idempotency_key: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class ProductionRealized:
    """A program's realized production in a period (`YYYY-MM`), in its forecast's `unit` (BTC,
    or PH/s for an NDF program): the latest one per program and period replaces the forecast in
    the performance report and the hedge file; a correction is a later event (actor: that person)."""

    TYPE: ClassVar[str] = T.PRODUCTION_REALIZED
    VERSION: ClassVar[int] = 1
    program: str
    period: str
    quantity: Decimal
    unit: str
    recorded_by: str
    note: str = ""
    idempotency_key: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A stored event of a type this code does not know (kept, never dropped)."""

    type: str
    payload: Mapping[str, Any]
    VERSION: ClassVar[int] = 1

    @property
    def TYPE(self) -> str:
        return self.type


AnyEvent = (RfqSubmitted | RfqStateChanged | MandateChecked | ApprovalRequested
            | ApprovalGranted | ApprovalRefused | RfqSent | QuoteReceived | QuoteRejected
            | QuoteDeclined | MessageRejected | QuotesRanked | WindowClosed | AwardDecided
            | AwardSent | AwardReferenceRecorded | ExecutionConfirmed | ExecutionRejected
            | ExecutionUnknown | ExecutionUnresolved | ExecutionResolved | FillRecorded
            | CancelRequested | RfqParked | OutcomeSent | KillSwitchSet | EngineRecovered
            | ProgramDecided | RiskAlerted | CollateralPosted | ProductionRealized)

EVENT_CLASSES: dict[str, type[Any]] = {cls.TYPE: cls for cls in get_args(AnyEvent)}
"""Each type's class, in ``AnyEvent``'s order (the catalogue's)."""


def encode(event: AnyEvent) -> dict[str, Any]:
    """The stored payload of ``event``."""
    return encode_payload(event)


def decode(type_: str, payload: Mapping[str, Any]) -> AnyEvent | UnknownEvent:
    """The typed event of a stored ``(type, payload)``; ``UnknownEvent`` for a type this
    code does not know. Raises ``EventDecodeError`` for a payload that does not fit."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        return UnknownEvent(type_, dict(payload))
    event: AnyEvent = decode_payload(cls, payload)
    return event


def catalogue_markdown() -> str:
    """The event catalogue for docs/audit.md, generated from the classes above."""
    lines = ["| event | class | payload | written when |", "| --- | --- | --- | --- |"]
    for type_, cls in EVENT_CLASSES.items():
        fields = []
        for spec in field_specs(cls):
            if spec.rest:
                fields.append("…context")
                continue
            mark = "" if spec.required else "?"
            fields.append(f"`{spec.key}`{mark}: {spec.doc_type}")
        doc = " ".join((cls.__doc__ or "").split()).replace("``", "`").replace("|", "\\|")
        lines.append(f"| `{type_}` | `{cls.__name__}` | {', '.join(fields)} | {doc} |")
    return "\n".join(lines) + "\n"
