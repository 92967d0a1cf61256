"""Settings of one FIX desk (one ``[dealers.fix]`` TOML table).

We are the initiator: the adapter connects to ``host:port`` and logs on as
``sender_comp_id`` to ``target_comp_id`` (FIX 4.4). Secrets never live in the file:
``password_env`` / ``username_env`` name environment variables, read when the adapter
starts. ``state_dir`` keeps the session's sequence numbers (``<dealer>.session.json``,
fsynced on every change, so a restart resumes the session) and the award journal
(``<dealer>.orders.jsonl``: one award, one order, across restarts).

Symbols: a domain instrument is the desk's ``Symbol(55)`` through ``symbols``, keyed by
``instrument_key`` (``future:BTC:USD:2027-02-26``, ``spot:BTC:USD``...; the domain's key,
``rfq_engine.domain.instruments``, the same as a REST desk's overrides). An instrument
without an entry is not quoted by the desk: its RFQs are declined with that reason.

The desk's dictionary quirks: ``award_style`` (``quote_response``: QuoteResponse(AJ)
hit/lift; ``new_order_single``: a previously-quoted FOK NewOrderSingle, OrdType=D, with
QuoteID), ``tell_losers`` (QuoteResponse 4 = cover / 5 = done away to a desk that quoted
and lost), ``quotes_packages`` (a multi-leg RFQ as one QuoteRequest with one NoRelatedSym
group per leg; else multi-leg RFQs are declined).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from rfq_engine.configtypes import STRICT
from rfq_engine.domain import Instrument
from rfq_engine.domain.instruments import instrument_key, keyed_by_instrument, parse_instrument_key

__all__ = ["FixDealerConfig", "TlsSettings", "instrument_key", "parse_instrument_key"]

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
"""The name of an environment variable (never its value)."""
CompId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
Millis = Annotated[int, Field(strict=True)]

_SYMBOL = re.compile(r"^[\x21-\x7e]{1,64}$")
"""Printable ASCII without spaces or '=' issues: a FIX String value (SOH never)."""


class TlsSettings(BaseModel):
    """TLS to the desk (most desks terminate FIX over TLS, or a stunnel in front)."""

    model_config = STRICT

    ca_file: Path | None = None
    """The CA bundle the desk's certificate is checked against (None: the system's)."""
    cert_file: Path | None = None
    key_file: Path | None = None
    """A client certificate, when the desk asks for one."""
    server_hostname: str | None = None
    """The name checked in the desk's certificate (default: ``host``)."""


class FixDealerConfig(BaseModel):
    """One FIX 4.4 desk (``docs/dealers-fix.md``)."""

    model_config = STRICT

    host: str = Field(min_length=1, max_length=253)
    port: Annotated[int, Field(strict=True, ge=1, le=65535)]
    sender_comp_id: CompId
    """Ours: ``SenderCompID(49)`` of what we send."""
    target_comp_id: CompId
    """The desk's: ``TargetCompID(56)`` of what we send."""
    state_dir: Path
    """Where the session's sequence numbers and the award journal are kept (fsynced). Keep
    it on durable storage: it is what resumes the session and keeps one award one order."""
    symbols: dict[str, str] = Field(min_length=1)
    """``Symbol(55)`` per instrument, keyed by ``instrument_key``."""
    units: tuple[str, ...] = Field(default=("BTC",), min_length=1)
    """The quantity units the desk's ``OrderQty(38)`` is in (compared without case); an RFQ
    in another unit is declined."""
    tls: TlsSettings | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    """Logon ``Username(553)`` / ``Password(554)``, read from these variables at start."""
    heartbeat_s: Annotated[int, Field(strict=True, ge=1, le=300)] = 30
    """``HeartBtInt(108)``."""
    reset_on_logon: bool = Field(default=False, strict=True)
    """Logon with ``ResetSeqNumFlag(141)=Y`` and both sequence numbers at 1 (a desk that
    resets daily on logon); False resumes the stored sequence numbers."""
    award_style: Literal["quote_response", "new_order_single"] = "quote_response"
    tell_losers: Literal["none", "cover", "done_away"] = "none"
    """QuoteResponse to a desk whose quote lost: none, ``QuoteRespType`` 4 (cover) or 5 (done away)."""
    quotes_packages: bool = Field(default=False, strict=True)
    package_symbol: str = "[N/A]"
    """``Symbol(55)`` of a multi-leg package's QuoteResponse (the legs are in ``NoLegs``)."""
    account: str | None = None
    """``Account(1)`` on quote requests and awards, when the desk wants one."""
    connect_timeout_ms: Millis = Field(default=2000, ge=1, le=60_000)
    logon_timeout_ms: Millis = Field(default=5000, ge=1, le=60_000)
    reconnect_min_ms: Millis = Field(default=200, ge=1, le=60_000)
    reconnect_max_ms: Millis = Field(default=10_000, ge=1, le=600_000)
    """Reconnect backoff: doubling from ``reconnect_min_ms`` up to this."""
    deadline_margin_ms: Millis = Field(default=20, ge=0, le=5_000)
    """A quote request unanswered this long before the RFQ's deadline is declined (with why)."""
    status_timeout_ms: Millis = Field(default=1000, ge=1, le=60_000)
    """How long ``query_execution`` waits for the answer to an OrderStatusRequest(H)."""
    clock_skew_ms: Millis = Field(default=30_000, ge=0, le=600_000)
    """How far the desk's clock may be from ours. The desk refuses an award that reaches it
    after the award's ``ValidUntilTime`` / ``ExpireTime`` by its own clock, so its "unknown
    order" proves the award absent only past that time plus this."""
    client_id_prefix: str = Field(default="rfq-", pattern=r"^[A-Za-z0-9_-]{0,16}$")
    """``ClOrdID(11)`` / ``QuoteRespID(693)`` = prefix + the award's execution id."""

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: dict[str, str]) -> dict[str, str]:
        return keyed_by_instrument(value, lambda symbol: None if _SYMBOL.match(symbol) else
                                   f"the symbol must be 1-64 printable ASCII characters, got {symbol!r}")

    @field_validator("package_symbol")
    @classmethod
    def _check_package_symbol(cls, value: str) -> str:
        if not _SYMBOL.match(value):
            raise ValueError(f"must be 1-64 printable ASCII characters, got {value!r}")
        return value

    def symbol(self, instrument: Instrument) -> str | None:
        """The desk's ``Symbol(55)`` for ``instrument``, or None when it does not quote it."""
        return self.symbols.get(instrument_key(instrument))

    @property
    def session_id(self) -> str:
        return f"FIX.4.4:{self.sender_comp_id}->{self.target_comp_id}"

