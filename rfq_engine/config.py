"""The one TOML config file, validated on load.

Sections: ``[engine]``, ``[store]``, ``[logging]``, ``[market]`` (reference prices),
``[mandates.<name>]``, ``[[dealers]]``, ``[api]`` (``rfq serve``), and for hedge programs
``[forecast]``, ``[programs.<name>]`` (``rfq_engine.hedging.program``) and
``[collateral.<dealer>]`` (``rfq_engine.hedging.margin``), ``[risk]`` (``rfq_engine.hedging.risk``).
Unknown keys are errors (a typo must not silently fall back to a default). Secrets never live in the file: a
field ending in ``_env`` names the environment variable that holds the value.

``load_config`` raises ``ConfigError`` whose message lists every problem as
``file: dotted.path: what is wrong``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from dealer_adapters.factory import DealerSpec
from dealer_adapters.mqtt.config import MqttBrokerConfig
from dealer_adapters.simulated.config import SimulatedDealerConfig
from rfq_engine.configtypes import STRICT
from rfq_engine.domain.errors import SetupError
from rfq_engine.engine.config import EngineConfig
from rfq_engine.hedging.margin import CollateralAgreement, check_collateral
from rfq_engine.hedging.program import ForecastConfig, ProgramConfig, check_programs
from rfq_engine.hedging.risk import RiskConfig, check_risk
from rfq_engine.mandate import MandateConfig
from rfq_engine.pricing.ccxt_reference import CcxtReferenceConfig
from rfq_engine.pricing.config import MarketConfig

__all__ = [
    "ROLES",
    "ApiConfig",
    "ApiUser",
    "AppConfig",
    "ConfigError",
    "LoggingConfig",
    "Role",
    "StoreConfig",
    "config_warnings",
    "load_config",
    "parse_config",
]


class ConfigError(SetupError):
    """The config file is missing, not TOML, or does not validate. The message names each field."""


class StoreConfig(BaseModel):
    model_config = STRICT

    url: str | None = "sqlite+aiosqlite:///rfq.db"
    url_env: str | None = None
    """Name of an environment variable holding the URL (use it when the URL has a password)."""
    checkpoint_path: str | None = None
    """Where the chain-head checkpoint is kept; default ``<db file>.head`` for SQLite."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    sqlite_cache_mib: int = Field(default=64, ge=2, le=65_536)
    """Page cache of the SQLite writer's connection (MiB): the indexes a commit touches."""
    outage_limit_s: float = Field(default=120.0, gt=0, le=86_400)
    """How long the writer retries a commit that fails (nothing is dropped meanwhile; new
    RFQs are refused) before it stops and the process must be restarted
    (runbooks/store-down.md)."""
    witness_path: str | None = None
    """A file outside the operator's reach the writer publishes its heads to; ``rfq audit
    verify`` checks against it (docs/audit.md, "Who can hide what")."""

    def resolved_url(self) -> str:
        if self.url_env:
            value = os.environ.get(self.url_env)
            if not value:
                raise ConfigError(f"store.url_env: environment variable {self.url_env} is not set")
            return value
        assert self.url is not None
        return self.url


class LoggingConfig(BaseModel):
    model_config = STRICT

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool | None = Field(None, alias="json")
    """true: JSON lines; false: human-readable; unset: human on a terminal, JSON otherwise."""


Role = Literal["trader", "approver", "compliance", "admin", "ops"]
ROLES: tuple[Role, ...] = ("trader", "approver", "compliance", "admin", "ops")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_TOKENS_PER_USER = 4
DEMO_TOKEN = "demo-only-token-of-rfq.example.toml"
"""The token of the example config's demo user, published in the README: anyone may use
it, so it is for trying ``rfq serve`` on one's own machine only (``rfq serve`` warns)."""
DEMO_TOKEN_SHA256 = hashlib.sha256(DEMO_TOKEN.encode()).hexdigest()


class ApiUser(BaseModel):
    """One ``[[api.users]]`` entry: a user of ``rfq serve`` and its bearer token(s), stored
    only as SHA-256 hashes (``rfq api new-token`` / ``hash-token`` print one); a token itself
    never appears in the config, logs or responses.

    ``token_sha256`` is one hash or a list of up to four: to rotate a token, add the new
    hash beside the old one, hand out the new token, then remove the old hash.
    ``expires_at`` (a TOML date-time with its offset) ends every token of the user."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=64)
    roles: list[Role] = Field(min_length=1)
    token_sha256: str | list[str]
    """Lowercase hex SHA-256 of the user's bearer token, or a list of them (rotation)."""
    expires_at: datetime | None = None
    """From this instant on the user's tokens are refused (401 "the token has expired")."""

    @field_validator("token_sha256")
    @classmethod
    def _hex(cls, value: str | list[str]) -> str | list[str]:
        hashes = [value] if isinstance(value, str) else value
        if not 1 <= len(hashes) <= MAX_TOKENS_PER_USER:
            raise ValueError(f"lists 1 to {MAX_TOKENS_PER_USER} token hashes, not {len(hashes)}")
        for item in hashes:
            if not _HEX64.match(item):
                raise ValueError("must be the 64-character lowercase hex SHA-256 of the token "
                                 "(rfq api new-token or rfq api hash-token prints it)")
        if len(set(hashes)) != len(hashes):
            raise ValueError("lists a token hash twice")
        return value

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("must be a date-time with its offset, like 2027-01-31T00:00:00Z")
        return value

    @property
    def token_hashes(self) -> tuple[str, ...]:
        return (self.token_sha256,) if isinstance(self.token_sha256, str) \
            else tuple(self.token_sha256)


class ApiConfig(BaseModel):
    """The ``[api]`` section: where ``rfq serve`` listens and who may call it. It lives here,
    below the API, so that the config never imports the API (``rfq_engine.api`` imports it)."""

    model_config = STRICT

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    users: list[ApiUser] = []
    tls_cert: Path | None = None
    """PEM certificate chain: with ``tls_key``, ``rfq serve`` speaks HTTPS (and wss://)."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    tls_key_password_env: str | None = None
    """Name of an environment variable holding the key's passphrase, if it is encrypted."""
    auth_failures: int = Field(10, ge=1, le=10_000)
    """Failed authentications one client address may make per ``auth_failure_window_s``;
    beyond that it gets 429 with ``Retry-After`` until the window ends."""
    auth_failure_window_s: float = Field(60.0, ge=1.0, le=86_400.0)
    auth_failure_clients: int = Field(10_000, ge=1, le=1_000_000)
    """At most this many client addresses are tracked (the oldest is forgotten first)."""
    trust_forwarded_for: bool = False
    """Behind one reverse proxy: take the client address from the last ``X-Forwarded-For``
    entry (the one the proxy appended) for the failed-authentication limit."""
    stream_queue: int = Field(2000, ge=10, le=1_000_000)
    """Messages waiting for one WebSocket client before its events are coalesced per RFQ
    (``rfq.changed``: reload that RFQ); a slow reader is never dropped for being slow."""
    stream_stall_s: float = Field(30.0, ge=1.0, le=3600.0)
    """A client whose messages wait this long with nothing sent has stopped reading: it is
    disconnected (close code 1013, with the reason)."""
    idempotency_ttl_s: int = Field(600, ge=1, le=7 * 86400)
    """How long a decided ``Idempotency-Key`` is remembered in memory (a forgotten one still
    replays, from the store)."""
    idempotency_keys: int = Field(10_000, ge=1, le=1_000_000)
    """At most this many decided keys are remembered; the oldest is forgotten first."""

    @model_validator(mode="after")
    def _unique(self) -> ApiConfig:
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("users: a user name is listed twice")
        hashes = [h for u in self.users for h in u.token_hashes]
        if len(set(hashes)) != len(hashes):
            raise ValueError("users: two users share a token")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both (HTTPS) or neither")
        if self.tls_key_password_env is not None and self.tls_key is None:
            raise ValueError("tls_key_password_env: needs tls_key")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


class AppConfig(BaseModel):
    model_config = STRICT

    engine: EngineConfig = EngineConfig()
    store: StoreConfig = StoreConfig()
    logging: LoggingConfig = LoggingConfig()
    market: MarketConfig
    mandates: dict[str, MandateConfig]
    dealers: list[DealerSpec]
    api: ApiConfig = ApiConfig()
    mqtt: MqttBrokerConfig | None = None
    """The broker connection shared by every ``kind = "mqtt"`` dealer (``docs/dealer-protocol.md``)."""
    forecast: ForecastConfig | None = None
    """Production forecast defaults for hedge programs (``docs/hedging.md``)."""
    programs: dict[str, ProgramConfig] = {}
    """Hedge programs, ``[programs.<name>]``, run by ``rfq serve``'s scheduler."""
    reference: CcxtReferenceConfig | None = None
    """Live reference prices from an exchange (``docs/dealers-ccxt.md``); default: ``[market]``."""
    collateral: dict[str, CollateralAgreement] = {}
    """Collateral agreements with OTC desks, ``[collateral.<dealer>]`` (``docs/hedging.md``)."""
    risk: RiskConfig = RiskConfig()
    """The risk monitor's thresholds, venue accounts and webhook, ``[risk]`` (``docs/risk.md``)."""

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        ids = [d.id for d in self.dealers]
        duplicates = sorted({d for d in ids if ids.count(d) > 1})
        if duplicates:
            raise ValueError(f"dealers: duplicate dealer id(s) {', '.join(duplicates)}")
        if not self.mandates:
            raise ValueError("mandates: at least one mandate is required")
        for name, mandate in self.mandates.items():
            unknown = sorted(set(mandate.dealers) - set(ids))
            if unknown:
                raise ValueError(
                    f"mandates.{name}.dealers: {', '.join(unknown)} not configured under [[dealers]]"
                )
        return self

    @model_validator(mode="after")
    def _mqtt_broker(self) -> AppConfig:
        mqtt_dealers = [d.id for d in self.dealers if d.kind == "mqtt"]
        if mqtt_dealers and self.mqtt is None:
            raise ValueError(f"mqtt: dealer(s) {', '.join(mqtt_dealers)} have kind \"mqtt\": "
                             "add an [mqtt] section (the broker connection)")
        return self

    @model_validator(mode="after")
    def _programs(self) -> AppConfig:
        check_programs(self.programs, self.mandates, [d.id for d in self.dealers], self.forecast)
        check_collateral(self.collateral, [d.id for d in self.dealers])
        check_risk(self.risk, [d.id for d in self.dealers])
        return self


EXPIRY_NOTICE = timedelta(days=14)
"""``config_warnings`` names a user whose tokens expire within this."""
NO_USERS = ('api.users: no [[api.users]]: nobody can sign in to `rfq serve` (README, '
            '"Making a token")')


def _windows(config: AppConfig, mandate: str) -> list[tuple[str, int]]:
    """The response windows an RFQ under ``mandate`` gets without naming its own."""
    out = [("engine.default_window_ms", config.engine.default_window_ms)]
    out += [(f"programs.{name}.window_ms", program.window_ms)
            for name, program in config.programs.items() if program.mandate == mandate]
    return out


def config_warnings(config: AppConfig, *, now: datetime | None = None) -> list[str]:
    """What is valid but will not work as meant (``rfq config check`` prints these, ``rfq
    serve`` logs them): a default window that outlives a simulated desk's quotes, a user
    whose tokens have expired, the published demo token, no users at all."""
    warnings: list[str] = []
    settings = {spec.id: spec.settings() for spec in config.dealers}
    min_validity = config.engine.min_quote_validity_ms
    for name, mandate in config.mandates.items():
        desks = [(d, desk) for d in mandate.dealers
                 if isinstance(desk := settings.get(d), SimulatedDealerConfig)]
        for where, window in _windows(config, name):
            short = []
            for dealer, desk in desks:
                earliest = max(0.0, desk.latency_ms - desk.latency_jitter_ms)
                if earliest + desk.quote_validity_ms < window + min_validity:
                    short.append(f"{dealer} (valid {desk.quote_validity_ms} ms from about "
                                 f"{earliest:.0f} ms)")
            if short:
                when = ("the window always runs to its end (close_policy deadline)"
                        if mandate.close_policy == "deadline"
                        else "when one desk stays silent the window runs to its end")
                warnings.append(
                    f"mandates.{name}: {where} = {window} outlives the quotes of "
                    f"{', '.join(short)}: {when}, and by then those quotes have expired (they "
                    f"must stay valid {min_validity} ms past it), so the RFQ ends not filled; "
                    "shorten the window or raise their dealers.simulated.quote_validity_ms")
    api = config.api
    if not api.users:
        warnings.append(NO_USERS)
    moment = now or datetime.now().astimezone()
    for user in api.users:
        if user.expires_at is not None and user.expires_at <= moment:
            warnings.append(f"api.users: {user.name}'s tokens expired at "
                            f"{user.expires_at.isoformat()}: they are refused")
        elif user.expires_at is not None and user.expires_at <= moment + EXPIRY_NOTICE:
            warnings.append(f"api.users: {user.name}'s tokens expire at "
                            f"{user.expires_at.isoformat()}: issue a new one (rotation: "
                            "list both hashes in token_sha256)")
        if DEMO_TOKEN_SHA256 in user.token_hashes:
            warnings.append(f"api.users: {user.name} has the demo token the README publishes: "
                            f"anyone who reaches the port can sign in as {user.name}; for a "
                            "trial on this machine only (`rfq api new-token` makes a real one)")
    return warnings


def _format(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {path or '(top level)'}: {message}")
    return "\n".join(lines)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> AppConfig:
    try:
        return AppConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None


def load_config(path: str | Path) -> AppConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_config(data, str(file))
