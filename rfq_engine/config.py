"""The one TOML config file, validated on load.

Sections: ``[engine]``, ``[store]``, ``[logging]``, ``[market]`` (reference prices),
``[mandates.<name>]``, ``[[dealers]]``, ``[api]`` (``rfq serve``), and for hedge programs
``[forecast]`` and ``[programs.<name>]`` (``rfq_engine.hedging.program``). Unknown keys are
errors (a typo must not silently fall back to a default). Secrets never live in the file: a
field ending in ``_env`` names the environment variable that holds the value.

``load_config`` raises ``ConfigError`` whose message lists every problem as
``file: dotted.path: what is wrong``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from dealer_adapters.factory import DealerSpec
from dealer_adapters.mqtt.config import MqttBrokerConfig
from rfq_engine.configtypes import STRICT
from rfq_engine.domain.errors import SetupError
from rfq_engine.engine.config import EngineConfig
from rfq_engine.hedging.program import ForecastConfig, ProgramConfig, check_programs
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


Role = Literal["trader", "approver", "compliance", "admin"]
ROLES: tuple[Role, ...] = ("trader", "approver", "compliance", "admin")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ApiUser(BaseModel):
    """One ``[[api.users]]`` entry: a user of ``rfq serve`` and its bearer token, stored only
    as a SHA-256 hash (``rfq api hash-token`` prints it); a token itself never appears in the
    config, logs or responses."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=64)
    roles: list[Role] = Field(min_length=1)
    token_sha256: str
    """Lowercase hex SHA-256 of the user's bearer token."""

    @field_validator("token_sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("must be the 64-character lowercase hex SHA-256 of the token "
                             "(rfq api hash-token prints it)")
        return value


class ApiConfig(BaseModel):
    """The ``[api]`` section: where ``rfq serve`` listens and who may call it. It lives here,
    below the API, so that the config never imports the API (``rfq_engine.api`` imports it)."""

    model_config = STRICT

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    users: list[ApiUser] = []
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
        hashes = [u.token_sha256 for u in self.users]
        if len(set(hashes)) != len(hashes):
            raise ValueError("users: two users share a token")
        return self


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
        return self


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
