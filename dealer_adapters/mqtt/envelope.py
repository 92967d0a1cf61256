"""The wire envelope of the dealer protocol (docs/dealer-protocol.md): topics, signing, verifying.

Pure: no I/O, no clock except where a caller passes none. Every message is one UTF-8
JSON object::

    {"v": 1, "type": "quote", "msg_id": "...", "dealer_id": "desk-a",
     "sent_at": "2026-11-21T10:00:00.123456Z", "body": {...}, "sig": "9f2c..."}

``sig`` is the hex HMAC-SHA256 (the dealer's shared secret) of the canonical JSON
(``rfq_engine.domain.canonical_json``) of the whole object without ``sig``, both ways; on
engine -> dealer messages ``dealer_id`` is the addressee, equal to the topic's dealer.

Verification (``open_envelope``) checks, in order, and reports the first failure: size,
UTF-8, JSON (no floats, NaN or duplicate keys), the envelope's fields, ``type`` allowed on
that topic, ``dealer_id`` equal to the topic's dealer, the signature, ``sent_at``, and
(``verify_inbound``) the body through the shared ``parse_body``. Whether a quote is late
or a confirm matches its award is the engine's call.

The project's extensions of the contract (docs/dealer-protocol.md, "Extensions"):

- ``rfq.new`` carries ``close_policy`` and ``award`` carries ``quantity_unit``
  (``outbound_body`` adds them; ``parse_outbound_body`` reads them, with defaults for an
  engine that does not send them);
- ``execution.query`` (engine -> dealer, on ``.../award``, ``ExecutionQuery``): what
  became of an execution id; the dealer answers with its ``execution.confirm`` or
  ``execution.reject`` again, or an ``execution.reject`` with ``"not_found": true``;
- ``status.features`` lists the extensions a dealer speaks (``FEATURE_EXECUTION_QUERY``).

``verify_inbound_ext`` returns the extension fields of an inbound message
(``InboundExtensions``) beside the domain message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    ExecutionReject,
    Inbound,
    InboundRejected,
    Outbound,
    RfqId,
    RfqNew,
    ValidationError,
    body_to_dict,
    canonical_json,
    format_ts,
    message_type,
    new_id,
    parse_body,
    parse_ts,
    utc_now,
)
from rfq_engine.domain.errors import WireError
from rfq_engine.domain.values import require

__all__ = [
    "DEALER_TOPICS",
    "ENGINE_TOPICS",
    "FEATURE_EXECUTION_QUERY",
    "NOT_FOUND_REASON",
    "PROTOCOL_VERSION",
    "EngineMessage",
    "Envelope",
    "EnvelopeError",
    "ExecutionQuery",
    "InboundExtensions",
    "TopicKind",
    "Topics",
    "body_id",
    "build_envelope",
    "build_payload",
    "encode_envelope",
    "encode_message",
    "message_body_text",
    "open_envelope",
    "outbound_body",
    "sign",
    "verify_inbound",
    "verify_inbound_ext",
]

PROTOCOL_VERSION = 1
RAW_LIMIT = 2000
"""Characters of a rejected payload kept for the audit log."""

TopicKind = Literal["rfq", "award", "quote", "execution", "status"]

FEATURE_EXECUTION_QUERY = "execution.query"
"""The ``status.features`` entry of a dealer that answers ``execution.query`` (and fences
an id it answered "not found")."""
NOT_FOUND_REASON = "unknown execution"
"""The ``reason`` of a dealer's "not found" answer (``execution.reject`` with ``not_found``)."""
_MAX_FEATURES = 64

ENGINE_TOPICS: dict[str, frozenset[str]] = {
    "rfq": frozenset({"rfq.new", "rfq.closed"}),
    "award": frozenset({"award", "execution.query"}),
}
"""Engine -> dealer: the message types each topic carries."""
DEALER_TOPICS: dict[str, frozenset[str]] = {
    "quote": frozenset({"quote", "quote.decline"}),
    "execution": frozenset({"execution.confirm", "execution.reject"}),
    "status": frozenset({"status"}),
}
"""Dealer -> engine: the message types each topic carries."""
_TOPIC_OF_TYPE = {
    t: kind for kinds in (ENGINE_TOPICS, DEALER_TOPICS) for kind, types in kinds.items() for t in types
}

_DECIMAL_FIELDS: dict[str, tuple[str, ...]] = {
    "quote": ("bid", "ask", "quantity"),
    "execution.confirm": ("price", "quantity"),
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_ID = 128


class Topics:
    """Topic names under one prefix: ``{prefix}/dealers/{dealer_id}/{kind}``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._head = f"{prefix}/dealers/"

    def topic(self, dealer_id: str, kind: TopicKind) -> str:
        return f"{self._head}{dealer_id}/{kind}"

    def for_type(self, dealer_id: str, msg_type: str) -> str:
        """The topic a message of ``msg_type`` travels on (``quote.decline`` -> ``quote``)."""
        kind: TopicKind = _TOPIC_OF_TYPE[msg_type]  # type: ignore[assignment]
        return self.topic(dealer_id, kind)

    def parse(self, topic: str) -> tuple[DealerId, str] | None:
        """``(dealer_id, kind)`` of a dealer topic under this prefix, else None."""
        if not topic.startswith(self._head):
            return None
        parts = topic[len(self._head):].split("/")
        if len(parts) != 2 or not parts[0]:
            return None
        return DealerId(parts[0]), parts[1]


class EnvelopeError(WireError):
    """A message that fails verification; ``reason`` says why, for the audit log."""

    def __init__(self, reason: str, *, msg_id: str | None = None, rfq_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.msg_id = msg_id
        self.rfq_id = rfq_id


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    """``execution.query`` (engine -> dealer, on ``.../award``; a project extension): what
    became of ``execution_id``? ``rfq_id`` is the award's RFQ when the engine knows it (an
    engine that restarted may not); a dealer answers from its own records either way."""

    execution_id: ExecutionId
    rfq_id: RfqId | None = None


EngineMessage = Outbound | ExecutionQuery
"""Everything the engine sends a dealer: the contract's messages and ``execution.query``."""


@dataclass(frozen=True, slots=True)
class InboundExtensions:
    """The extension fields of one verified inbound message (defaults when absent)."""

    not_found: bool = False
    """``execution.reject``: the dealer has no record of the execution id (and, when it
    advertises ``execution.query``, fences it: it will never execute it)."""
    features: tuple[str, ...] = ()
    """``status``: the extensions the dealer speaks (``FEATURE_EXECUTION_QUERY``)."""


_NO_EXTENSIONS = InboundExtensions()


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified envelope: the signature matched and the fields have their types."""

    type: str
    msg_id: str
    dealer_id: DealerId
    sent_at: datetime
    body: Mapping[str, Any]


def sign(unsigned: Mapping[str, Any], secret: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the canonical JSON of ``unsigned`` (which has no ``sig``)."""
    text = canonical_json(unsigned)
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def build_envelope(
    msg_type: str,
    body: Mapping[str, Any],
    *,
    dealer_id: str,
    secret: bytes,
    msg_id: str | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """A signed envelope (a fresh UUID ``msg_id`` and the current time unless given)."""
    unsigned: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "type": msg_type,
        "msg_id": msg_id or new_id(),
        "dealer_id": dealer_id,
        "sent_at": format_ts(sent_at or utc_now()),
        "body": dict(body),
    }
    return {**unsigned, "sig": sign(unsigned, secret)}


def encode_envelope(envelope: Mapping[str, Any]) -> bytes:
    """The payload bytes: canonical JSON (a receiver accepts any JSON layout)."""
    return canonical_json(envelope).encode("utf-8")


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # as canonical_json renders a string


def build_payload(
    msg_type: str,
    body: Mapping[str, Any] | None = None,
    *,
    dealer_id: str,
    secret: bytes,
    msg_id: str | None = None,
    sent_at: datetime | None = None,
    body_text: str | None = None,
) -> tuple[str, bytes]:
    """``(msg_id, payload)``: the same bytes as ``encode_envelope(build_envelope(...))`` in
    one canonical rendering instead of two. ``body_text`` is ``canonical_json(body)`` when
    the caller has it already (one ``rfq.new`` to ten dealers is rendered once).

    The envelope's keys are fixed, so its canonical form is the sorted members around the
    body's canonical text; ``sig`` sorts between ``sent_at`` and ``type``."""
    if body_text is None:
        body_text = canonical_json(dict(body or {}))
    msg_id = msg_id or new_id()
    head = (f'{{"body":{body_text},"dealer_id":{_json_str(dealer_id)},"msg_id":{_json_str(msg_id)},'
            f'"sent_at":{_json_str(format_ts(sent_at or utc_now()))}')
    tail = f',"type":{_json_str(msg_type)},"v":{PROTOCOL_VERSION}}}'
    sig = hmac.new(secret, (head + tail).encode("utf-8"), hashlib.sha256).hexdigest()
    return msg_id, f'{head},"sig":"{sig}"{tail}'.encode()


def message_body_text(message: EngineMessage | Inbound) -> str:
    """The canonical JSON of ``outbound_body(message)`` (for ``encode_message``'s ``body_text``)."""
    return canonical_json(outbound_body(message))


def outbound_body(message: EngineMessage | Inbound) -> dict[str, Any]:
    """The wire ``body`` of a message: the contract's (``body_to_dict``) plus this project's
    extension fields: ``close_policy`` on ``rfq.new``, ``quantity_unit`` on ``award`` (when
    the award names it), and the ``execution.query`` body."""
    if isinstance(message, ExecutionQuery):
        body: dict[str, Any] = {"execution_id": message.execution_id}
        if message.rfq_id:
            body["rfq_id"] = message.rfq_id
        return body
    body = body_to_dict(message)
    if isinstance(message, RfqNew):
        body["close_policy"] = str(message.close_policy)
    elif isinstance(message, Award) and message.quantity_unit:
        body["quantity_unit"] = message.quantity_unit
    return body


def _message_type(message: EngineMessage | Inbound) -> str:
    return "execution.query" if isinstance(message, ExecutionQuery) else message_type(message)


def encode_message(message: EngineMessage | Inbound, *, dealer_id: str, secret: bytes,
                   body_text: str | None = None) -> tuple[str, bytes]:
    """``(msg_id, payload)`` for a message (``outbound_body``), signed with the dealer's secret.
    ``body_text``: ``message_body_text(message)``, when the caller already rendered it."""
    if body_text is None:
        body_text = message_body_text(message)
    return build_payload(_message_type(message), dealer_id=dealer_id, secret=secret, body_text=body_text)


# --------------------------------------------------------------------------- verifying


def _no_float(text: str) -> Any:
    raise EnvelopeError(f"a JSON float ({text}) is not allowed: decimals travel as strings, like \"{text}\"")


def _no_constant(text: str) -> Any:
    raise EnvelopeError(f"malformed JSON: {text} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EnvelopeError(f"malformed JSON: duplicate key {key!r}")
        out[key] = value
    return out


def _loads(payload: bytes, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise EnvelopeError(f"message too large: {len(payload)} bytes (limit {max_bytes})")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(
            text, parse_float=_no_float, parse_constant=_no_constant, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise EnvelopeError("malformed JSON: nested too deeply") from None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = require(data, key, "envelope")
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise ValidationError(f"envelope.{key}", f"must be a non-empty string (max {_MAX_ID} chars)")
    return value


def _expected(allowed: frozenset[str]) -> str:
    return " or ".join(sorted(allowed))


def open_envelope(
    payload: bytes,
    *,
    topic_dealer: str,
    allowed_types: frozenset[str],
    secret: bytes,
    max_bytes: int = 65_536,
) -> Envelope:
    """Verify one payload received on ``topic_dealer``'s topic; raises ``EnvelopeError``.

    ``allowed_types`` are the message types the topic carries. The signature is checked
    with ``secret`` (the topic dealer's) before anything in the body is trusted.
    """
    data = _loads(payload, max_bytes)
    if not isinstance(data, dict):
        raise EnvelopeError(f"the envelope must be a JSON object, got {type(data).__name__}")
    raw_id = data.get("msg_id")
    msg_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= _MAX_ID else None
    body = data.get("body")
    raw_rfq = body.get("rfq_id") if isinstance(body, dict) else None
    rfq_id = raw_rfq if isinstance(raw_rfq, str) and 0 < len(raw_rfq) <= _MAX_ID else None

    def fail(reason: str) -> EnvelopeError:
        return EnvelopeError(reason, msg_id=msg_id, rfq_id=rfq_id)

    try:
        version = require(data, "v", "envelope")
        if type(version) is not int or version != PROTOCOL_VERSION:
            raise fail(f"envelope.v: unsupported protocol version {version!r} (expected {PROTOCOL_VERSION})")
        msg_type = _text(data, "type")
        if msg_type not in allowed_types:
            raise fail(f"envelope.type: {msg_type!r} is not accepted on this topic "
                       f"(expected {_expected(allowed_types)})")
        _text(data, "msg_id")
        claimed = _text(data, "dealer_id")
        if claimed != topic_dealer:
            raise fail(f"envelope.dealer_id: {claimed!r} does not match the topic's dealer "
                       f"{topic_dealer!r} (spoofing attempt)")
        sig = data.get("sig")
        if sig is None:
            raise fail("envelope.sig: missing: every message must be signed")
        if not isinstance(sig, str) or not _HEX64.match(sig):
            raise fail("envelope.sig: must be 64 lowercase hex characters (HMAC-SHA256)")
        unsigned = {k: v for k, v in data.items() if k != "sig"}
        try:
            # canonical_json without its domain-value pass: parsed JSON holds none (and no float)
            text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            expected = hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()
        except UnicodeEncodeError:
            raise fail("invalid Unicode in the message (a lone surrogate escape)") from None
        if not hmac.compare_digest(expected, sig):
            raise fail(f"envelope.sig: bad signature: does not verify with {topic_dealer}'s shared secret")
        sent_at = parse_ts(require(data, "sent_at", "envelope"), "envelope.sent_at")
        if not isinstance(body, dict):
            raise fail("envelope.body: must be a JSON object")
    except ValidationError as exc:
        raise fail(str(exc)) from None
    return Envelope(msg_type, msg_id or "", DealerId(claimed), sent_at, body)


def verify_inbound(
    payload: bytes,
    *,
    topic_dealer: DealerId,
    kind: str,
    secret: bytes,
    received_at: datetime,
    max_bytes: int = 65_536,
) -> Inbound:
    """A dealer -> engine payload as a domain message, or ``InboundRejected`` with the reason.

    Never raises: every failure becomes an ``InboundRejected`` the engine audits.
    """
    return verify_inbound_ext(payload, topic_dealer=topic_dealer, kind=kind, secret=secret,
                              received_at=received_at, max_bytes=max_bytes)[0]


def verify_inbound_ext(
    payload: bytes,
    *,
    topic_dealer: DealerId,
    kind: str,
    secret: bytes,
    received_at: datetime,
    max_bytes: int = 65_536,
) -> tuple[Inbound, InboundExtensions]:
    """``verify_inbound``, plus the message's extension fields (defaults for a rejection)."""
    allowed = DEALER_TOPICS.get(kind)
    try:
        if allowed is None:
            raise EnvelopeError(f"no dealer -> engine messages travel on a {kind!r} topic")
        envelope = open_envelope(
            payload, topic_dealer=topic_dealer, allowed_types=allowed, secret=secret, max_bytes=max_bytes
        )
        try:
            for key in _DECIMAL_FIELDS.get(envelope.type, ()):
                value = envelope.body.get(key)
                if value is not None and not isinstance(value, str):
                    raise ValidationError(f"body.{key}",
                                          f"must be a decimal string, got a JSON {_json_kind(value)}")
            extensions = _extensions(envelope.type, envelope.body)
            if extensions.not_found and "rfq_id" not in envelope.body:
                # a "not found" answer to a query that named no RFQ: the dealer cannot know it
                return ExecutionReject(
                    ExecutionId(body_id(envelope.body, "execution_id")), RfqId(""), topic_dealer,
                    str(envelope.body.get("reason", ""))[:500], received_at, envelope.msg_id,
                ), extensions
            return parse_body(envelope.type, envelope.body, dealer_id=topic_dealer,
                              msg_id=envelope.msg_id, received_at=received_at), extensions
        except ValidationError as exc:
            rfq = envelope.body.get("rfq_id")
            raise EnvelopeError(str(exc), msg_id=envelope.msg_id,
                                rfq_id=rfq if isinstance(rfq, str) else None) from None
    except EnvelopeError as exc:
        raw = payload[:RAW_LIMIT * 4].decode("utf-8", errors="replace")[:RAW_LIMIT]
        return InboundRejected(
            topic_dealer,
            exc.reason,
            received_at,
            exc.msg_id,
            None if exc.rfq_id is None else RfqId(exc.rfq_id),
            raw,
        ), _NO_EXTENSIONS


def _extensions(msg_type: str, body: Mapping[str, Any]) -> InboundExtensions:
    """The extension fields of a dealer message's body; raises ``ValidationError``."""
    if msg_type == "execution.reject" and "not_found" in body:
        if not isinstance(body["not_found"], bool):
            raise ValidationError("body.not_found", "must be true or false")
        return InboundExtensions(not_found=body["not_found"]) if body["not_found"] else _NO_EXTENSIONS
    if msg_type == "status" and "features" in body:
        features = body["features"]
        if (not isinstance(features, list) or len(features) > _MAX_FEATURES
                or not all(isinstance(f, str) and 0 < len(f) <= _MAX_ID for f in features)):
            raise ValidationError("body.features", "must be a list of feature names (strings)")
        return InboundExtensions(features=tuple(features))
    return _NO_EXTENSIONS


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def body_id(body: Mapping[str, Any], key: str) -> str:
    value = require(body, key, "body")
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise ValidationError(f"body.{key}", f"must be a non-empty string (max {_MAX_ID} chars)")
    return value
