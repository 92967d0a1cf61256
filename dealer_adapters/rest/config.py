"""Settings of one REST desk (one ``[dealers.rest]`` TOML table) and its instrument names.

A desk is reached at ``base_url`` (the HTTP contract is ``docs/dealers-rest.md``) with
bearer-token or HMAC request signing. Secrets never live in the file: ``token_env``,
``key_env`` and ``secret_env`` name environment variables, read when the adapter starts.

Instrument names: a domain instrument becomes the desk's name through, first, an
explicit entry in ``instrument_overrides`` (keyed by ``instrument_key``, the domain's
``rfq_engine.domain.instruments.instrument_key``) and otherwise the
template of its kind in ``instruments``, a ``str.format`` template over the instrument's
fields (see ``TEMPLATE_FIELDS``), upper-cased unless ``upper_case = false``::

    [dealers.rest.instruments]
    option = "{underlying}-{expiry_day}{expiry:%b%y}-{strike}-{option_type[0]}"  # BTC-26FEB27-35000-P
    future = "{underlying}-{expiry_day}{expiry:%b%y}"                           # BTC-26FEB27
    perpetual = "{underlying}-PERPETUAL"

    [dealers.rest.instrument_overrides]
    "future:BTC:USD:2026-12-25" = "XBTZ26"

An instrument with neither is not quoted by the desk: its RFQs are declined with that
reason. Multi-leg packages are declined unless ``quotes_packages = true`` (the desk then
prices the whole package in one request, legs listed).

Every error names its field, e.g. ``instruments.option: unknown field 'strik'``.
"""

from __future__ import annotations

import re
import string
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from rfq_engine.configtypes import STRICT
from rfq_engine.domain import (
    Future,
    HashpriceNdf,
    Instrument,
    InstrumentKind,
    Option,
    OptionType,
    Perpetual,
    Spot,
    decimal_str,
)
from rfq_engine.domain.instruments import instrument_key, keyed_by_instrument, parse_instrument_key

__all__ = [
    "TEMPLATE_FIELDS",
    "BearerAuth",
    "HmacAuth",
    "RestDealerConfig",
    "instrument_key",
    "parse_instrument_key",
]

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
"""The name of an environment variable (never its value)."""

Millis = Annotated[int, Field(strict=True)]

TEMPLATE_FIELDS: dict[InstrumentKind, frozenset[str]] = {
    InstrumentKind.SPOT: frozenset({"kind", "underlying", "quote_ccy"}),
    InstrumentKind.PERPETUAL: frozenset({"kind", "underlying", "quote_ccy"}),
    InstrumentKind.FUTURE: frozenset({"kind", "underlying", "quote_ccy", "expiry", "expiry_day"}),
    InstrumentKind.OPTION: frozenset(
        {"kind", "underlying", "quote_ccy", "expiry", "expiry_day", "strike", "option_type"}
    ),
    InstrumentKind.HASHPRICE_NDF: frozenset(
        {"kind", "underlying", "quote_ccy", "start", "start_day", "days", "end"}
    ),
}
"""The fields a template of each kind may name. ``expiry``/``start``/``end`` are dates (a
format spec is a ``strftime`` pattern: ``{expiry:%d%b%y}``); ``expiry_day``/``start_day``
the unpadded day of the month; ``strike`` a plain decimal string (``35000``, ``0.5``);
``option_type`` ``put`` or ``call`` (``{option_type[0]}`` is ``p`` or ``c``); ``days`` an int."""

_SAMPLES: dict[InstrumentKind, Instrument] = {
    InstrumentKind.SPOT: Spot("BTC", "USD"),
    InstrumentKind.PERPETUAL: Perpetual("BTC", "USD"),
    InstrumentKind.FUTURE: Future("BTC", "USD", date(2027, 2, 26)),
    InstrumentKind.OPTION: Option("BTC", "USD", date(2027, 2, 26), Decimal(35000), OptionType.PUT),
    InstrumentKind.HASHPRICE_NDF: HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30),
}

_CLIENT_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,16}$")


def template_values(instrument: Instrument) -> dict[str, Any]:
    """The fields a template of the instrument's kind may name (``TEMPLATE_FIELDS``)."""
    values: dict[str, Any] = {
        "kind": instrument.kind.value,
        "underlying": instrument.underlying,
        "quote_ccy": instrument.quote_ccy,
    }
    if isinstance(instrument, Future | Option):
        values["expiry"] = instrument.expiry
        values["expiry_day"] = instrument.expiry.day
    if isinstance(instrument, Option):
        values["strike"] = decimal_str(instrument.strike)
        values["option_type"] = instrument.option_type.value
    if isinstance(instrument, HashpriceNdf):
        values["start"] = instrument.start
        values["start_day"] = instrument.start.day
        values["days"] = instrument.days
        values["end"] = instrument.end
    return values


def _check_template(kind: InstrumentKind, template: str) -> None:
    allowed = TEMPLATE_FIELDS[kind]
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a valid template: {exc}") from None
    for _literal, field_name, _spec, _conversion in parsed:
        if field_name is None:
            continue
        base = re.split(r"[.\[]", field_name, maxsplit=1)[0]
        if not base or base.isdigit():
            raise ValueError("placeholders must be named, like {underlying}")
        if "." in field_name:
            raise ValueError(f"{{{field_name}}}: attribute access is not allowed")
        if base not in allowed:
            fields = ", ".join(sorted(allowed))
            raise ValueError(f"unknown field {base!r}; {kind.value} templates may use {fields}")
    try:
        name = template.format(**template_values(_SAMPLES[kind]))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot format a sample {kind.value}: {exc}") from None
    if not name.strip():
        raise ValueError("gives an empty name")


class BearerAuth(BaseModel):
    """``Authorization: Bearer <token>`` on every request."""

    model_config = STRICT

    scheme: Literal["bearer"]
    token_env: EnvName


class HmacAuth(BaseModel):
    """Headers ``X-Key``, ``X-Timestamp`` (ms since the epoch) and ``X-Signature``: lowercase
    hex HMAC-SHA256 with the secret over ``"{timestamp}\\n{METHOD}\\n{path}\\n{body}"``."""

    model_config = STRICT

    scheme: Literal["hmac"]
    key_env: EnvName
    secret_env: EnvName


class RestDealerConfig(BaseModel):
    """One REST desk (``docs/dealers-rest.md``)."""

    model_config = STRICT

    base_url: str
    """``https://desk.example.com/api``: the contract's paths (``/v1/quotes``...) are appended."""
    auth: BearerAuth | HmacAuth = Field(discriminator="scheme")
    state_dir: Path
    """Where the order-intent journal ``<dealer id>.orders.jsonl`` is kept (fsynced): it is what
    makes one award one order, also across restarts. Keep it on durable storage."""
    connect_timeout_ms: Millis = Field(default=1000, ge=1, le=60_000)
    read_timeout_ms: Millis = Field(default=2000, ge=1, le=120_000)
    """Per request; quote requests are also cut at the RFQ's deadline."""
    deadline_margin_ms: Millis = Field(default=20, ge=0, le=5_000)
    """A quote request is abandoned this long before the RFQ's deadline, so the decline that
    says why reaches the RFQ while its window is still open (and is audited with its reason)."""
    reconcile_interval_ms: Millis = Field(default=200, ge=10, le=60_000)
    """After an order's outcome is unknown (timeout, 5xx, bad answer): how often it is asked
    for by client order id."""
    reconcile_grace_ms: Millis = Field(default=5000, ge=0, le=600_000)
    """How long past the award's ``confirm_by`` an unknown order is still asked for."""
    clock_skew_ms: Millis = Field(default=30_000, ge=0, le=600_000)
    """How far the desk's clock may be from ours (the HMAC replay window is 30 s). The desk
    refuses an order that reaches it after the order's ``expires_at`` by its own clock, so a
    ``404 not_found`` for an order proves it absent only once our clock is past
    ``expires_at + clock_skew_ms``; before that a 404 proves nothing (``query_execution``
    says UNKNOWN)."""
    instruments: dict[InstrumentKind, str] = Field(default_factory=dict)
    """A name template per instrument kind (see the module docstring)."""
    instrument_overrides: dict[str, str] = Field(default_factory=dict)
    """Explicit names, keyed by ``instrument_key`` (``option:BTC:USD:2027-02-26:35000:put``)."""
    upper_case: bool = Field(default=True, strict=True)
    """Upper-case names made from templates (overrides are used exactly as written)."""
    quotes_packages: bool = Field(default=False, strict=True)
    """The desk prices multi-leg packages in one request; else multi-leg RFQs are declined."""
    two_way: Literal["per_side", "single_call"] = "per_side"
    """``per_side``: a two-way RFQ is two concurrent requests (side ``buy`` and ``sell``);
    ``single_call``: one request with side ``two_way`` answered with a bid and an ask."""
    client_order_id_prefix: str = "rfq-"
    """Client order id = prefix + the engine's execution id (deterministic, so it can be asked for)."""

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL like https://desk.example.com/api, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or a fragment")
        return value.strip().rstrip("/")

    @field_validator("instruments")
    @classmethod
    def _check_templates(cls, value: dict[InstrumentKind, str]) -> dict[InstrumentKind, str]:
        for kind, template in value.items():
            try:
                _check_template(kind, template)
            except ValueError as exc:
                raise ValueError(f"{kind.value}: {exc}") from None
        return value

    @field_validator("instrument_overrides")
    @classmethod
    def _check_overrides(cls, value: dict[str, str]) -> dict[str, str]:
        return keyed_by_instrument(value, lambda name: None if name.strip() else
                                   "the desk's name must not be empty")

    @field_validator("client_order_id_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _CLIENT_PREFIX.match(value):
            raise ValueError("must be at most 16 letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _check(self) -> RestDealerConfig:
        if not self.instruments and not self.instrument_overrides:
            raise ValueError("instruments: name at least one kind's template (or instrument_overrides)")
        return self

    def desk_name(self, instrument: Instrument) -> str | None:
        """The desk's name for ``instrument``, or None when the desk does not quote it."""
        override = self.instrument_overrides.get(instrument_key(instrument))
        if override is not None:
            return override
        template = self.instruments.get(instrument.kind)
        if template is None:
            return None
        name = template.format(**template_values(instrument))
        return name.upper() if self.upper_case else name
