"""Settings of one exchange-backed dealer (one ``[dealers.ccxt]`` TOML table).

    [[dealers]]
    id = "okx-book"
    kind = "ccxt"

    [dealers.ccxt]
    exchange = "okx"                 # a ccxt exchange id
    mode = "book"                    # book | convert | okx_rfq | deribit_block_rfq
    api_key_env = "OKX_KEY"          # environment variable *names*, never the secrets
    secret_env = "OKX_SECRET"
    password_env = "OKX_PASSPHRASE"
    sandbox = false
    urls = { rest = "https://gateway.internal" }   # optional override of the API URLs
    options = { defaultType = "swap" }             # passed to ccxt as exchange.options
    journal_path = "var/okx-book.journal"
    currency_aliases = { USD = ["USDT", "USDC"] }
    last_look_tolerance_bps = "10"

Money-like numbers are decimals (``DecimalStr``: a quoted string or an int, never a
float); durations are whole milliseconds. Each dealer gets its own ccxt exchange
instance, so two dealers on one account (say a book dealer and a convert dealer) are
two entries with different ids.

``last_look_tolerance_bps`` is execution safety at the venue, not a trading rule: the
engine's mandate (price tolerance against the reference, credit, caps) has already
accepted the quote before the award. On the award the adapter re-walks the book, and if
the price the award would now get moved *against* the quote by more than this, it rejects
the award instead of sending an order. It can only make the desk stricter, never accept
what the mandate refused; keep it at or below the mandate's ``price_tolerance_bps``.

A ``book`` dealer needs its venue in ``dialects.py`` (the field that carries our client
order id, and the look-up by it): a venue without an entry is a config error, with no
opt-out, because an order whose reply is lost there could not be found again and the award
could not be executed exactly once.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from dealer_adapters.ccxt.dialects import DEFAULT_KEY_LEN, DIALECTS, dialect_for
from dealer_adapters.ccxt.route import MIN_KEY_DIGEST
from rfq_engine.configtypes import STRICT, DecimalStr

__all__ = ["CcxtDealerConfig"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9_]*$")

class CcxtDealerConfig(BaseModel):
    """One exchange account presented to the engine as one dealer."""

    model_config = STRICT

    exchange: str
    """The ccxt exchange id (``okx``, ``binance``, ``deribit``...); checked when the adapter starts."""
    mode: Literal["book", "convert", "okx_rfq", "deribit_block_rfq"] = "book"
    """``book``: quotes from the order book, IOC execution; ``convert``: the venue's firm
    conversion quotes (spot); ``okx_rfq``: OKX block RFQ (the best maker quote);
    ``deribit_block_rfq``: Deribit Block RFQ (``deribit_block.py``)."""
    api_key_env: str | None = None
    secret_env: str | None = None
    password_env: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    """Merged into ccxt's ``exchange.options`` (for example ``defaultType``)."""
    sandbox: bool = Field(default=False, strict=True)
    urls: dict[str, Any] | None = None
    """Override of ``exchange.urls['api']`` (a testnet or a private gateway), merged key by key."""
    timeout_ms: int = Field(default=3000, ge=50, le=60_000, strict=True)
    """Per-request timeout. A timed-out order is reconciled by its client order id."""
    enable_rate_limit: bool = Field(default=True, strict=True)
    """ccxt's own request throttle; keep it on against a real venue."""
    journal_path: Path
    """The fsynced execution journal (exactly-once across restarts). Required."""

    quote_validity_ms: int = Field(default=2000, ge=100, le=60_000, strict=True)
    """How long a quote from the book stays firm."""
    requote_interval_ms: int = Field(default=1000, ge=50, le=60_000, strict=True)
    """While the RFQ is open, the quote is refreshed this often (a later quote replaces the earlier)."""
    book_depth: int = Field(default=100, ge=1, le=5000, strict=True)
    """Levels fetched per side when walking the book."""
    taker_fee: DecimalStr | None = None
    """Fraction of traded value (``"0.0005"`` = 5 bps); overrides the market's ``taker`` fee."""
    last_look_tolerance_bps: DecimalStr = Decimal(10)
    """Reject the award when the re-walked book is this much worse than the quote (see above)."""
    currency_aliases: dict[str, list[str]] = Field(default_factory=dict)
    """Quote currencies treated as the RFQ's own (``{USD = ["USDT", "USDC"]}``)."""
    client_order_prefix: str = "rfq"
    """Start of every client order id (letters and digits); the rest is derived from the execution id."""
    client_order_id_max_len: int | None = Field(default=None, ge=8, le=64, strict=True)
    """Length of the derived client order id (default 32); at most what the venue's field
    takes (``dialects.py``)."""
    confirm_margin_ms: int = Field(default=100, ge=0, le=60_000, strict=True)
    """An award with less than this left before ``confirm_by`` is rejected, never sent."""
    reconcile_interval_ms: int = Field(default=250, ge=10, le=60_000, strict=True)
    """Between two look-ups of an order by client order id after an error."""
    reconcile_timeout_ms: int = Field(default=60_000, ge=100, le=3_600_000, strict=True)
    """How long an unresolved order is looked up before it is recorded as never placed."""
    rate_limit_backoff_ms: int = Field(default=1000, ge=0, le=60_000, strict=True)
    """Pause after the venue said ``rate limit exceeded`` before looking the order up."""
    order_poll_attempts: int = Field(default=20, ge=1, le=1000, strict=True)
    """Look-ups of a placed IOC order until the venue reports it closed."""
    reconnect_interval_ms: int = Field(default=5000, ge=100, le=600_000, strict=True)
    """Retry of loading the markets after a failed start (the dealer is offline meanwhile)."""

    convert_validity_ms: int | None = Field(default=None, ge=100, le=600_000, strict=True)
    """Cap on a convert quote's validity (default: the venue's own expiry, else quote_validity_ms)."""
    rfq_poll_interval_ms: int = Field(default=500, ge=50, le=60_000, strict=True)
    """OKX block RFQ: how often the venue's maker quotes are polled."""
    rfq_counterparties: list[str] = Field(default_factory=list)
    """Block RFQ: the makers asked (OKX requires at least one; on Deribit none asks every maker)."""
    rfq_anonymous: bool = Field(default=True, strict=True)
    rfq_grace_ms: int = Field(default=5000, ge=0, le=60_000, strict=True)
    """Deribit Block RFQ: the grace period after creation in which makers' quotes are hidden
    from the taker (Deribit documents 5 s); an RFQ whose window is shorter is declined."""

    @field_validator("exchange")
    @classmethod
    def _exchange_id(cls, value: str) -> str:
        if not _EXCHANGE_ID.match(value):
            raise ValueError(f"must be a ccxt exchange id like 'okx', got {value!r}")
        return value

    @field_validator("api_key_env", "secret_env", "password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"must name an environment variable (letters, digits, '_'), got {value!r}")
        return value

    @field_validator("client_order_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,7}", value):
            raise ValueError("must be 1-8 letters and digits, starting with a letter")
        return value

    @field_validator("currency_aliases")
    @classmethod
    def _aliases(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k.strip().upper(): [a.strip().upper() for a in v] for k, v in value.items()}

    @model_validator(mode="after")
    def _check(self) -> CcxtDealerConfig:
        if self.requote_interval_ms >= self.quote_validity_ms:
            raise ValueError("requote_interval_ms: must be shorter than quote_validity_ms, "
                             "or a quote could expire before it is refreshed")
        if not Decimal(0) <= self.last_look_tolerance_bps <= Decimal(10_000):
            raise ValueError("last_look_tolerance_bps: must be 0..10000")
        if self.taker_fee is not None and not Decimal(0) <= self.taker_fee < Decimal("0.1"):
            raise ValueError("taker_fee: must be a fraction in [0, 0.1), like \"0.0005\"")
        if self.mode == "okx_rfq" and self.exchange != "okx":
            raise ValueError("mode: 'okx_rfq' needs exchange = 'okx'")
        if self.mode == "okx_rfq" and not self.rfq_counterparties:
            raise ValueError("rfq_counterparties: OKX block RFQ needs at least one maker")
        if self.mode == "deribit_block_rfq" and self.exchange != "deribit":
            raise ValueError("mode: 'deribit_block_rfq' needs exchange = 'deribit'")
        if (self.mode == "deribit_block_rfq" and self.rfq_anonymous
                and 0 < len(self.rfq_counterparties) < 5):
            raise ValueError("rfq_anonymous: Deribit takes an anonymous Block RFQ only when at least "
                             "5 makers are asked (or none: every maker); set rfq_anonymous = false")
        dialect = dialect_for(self.exchange)
        if self.mode == "book" and dialect is None:
            raise ValueError(
                f"exchange: {self.exchange!r} has no idempotency-key dialect "
                f"(dealer_adapters/ccxt/dialects.py knows {', '.join(sorted(DIALECTS))}): a book "
                "dealer there could not look a timed-out order up by our key, so an award could "
                "not be executed exactly once; it is refused")
        if (dialect is not None and self.client_order_id_max_len is not None
                and self.client_order_id_max_len > dialect.max_len):
            raise ValueError(f"client_order_id_max_len: {dialect.venue} {dialect.field} takes at most "
                             f"{dialect.max_len} characters")
        if self.order_id_max_len - len(self.client_order_prefix) < MIN_KEY_DIGEST:
            raise ValueError(
                f"client_order_id_max_len: {self.order_id_max_len} characters after the prefix "
                f"{self.client_order_prefix!r} keep {self.order_id_max_len - len(self.client_order_prefix)} "
                f"hex digits of the execution's digest; at least {MIN_KEY_DIGEST} are needed (a length of "
                f"at least {len(self.client_order_prefix) + MIN_KEY_DIGEST}), or two executions could "
                "share a key and a look-up find the other's order")
        return self

    @property
    def order_id_max_len(self) -> int:
        """Length of the derived client order id for this dealer."""
        dialect = dialect_for(self.exchange)
        if dialect is not None:
            return dialect.key_len(self.client_order_id_max_len)
        return self.client_order_id_max_len or DEFAULT_KEY_LEN
