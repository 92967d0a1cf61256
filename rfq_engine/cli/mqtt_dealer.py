"""``rfq dealer --config dealer.toml``: the reference dealer bot as a process.

The file (deploy/mosquitto/dealer.example.toml is a complete example)::

    [dealer]
    id = "desk-a"                       # its broker user name, client id and topic segment
    secret_env = "RFQ_DEALER_SECRET"    # HMAC key shared with the engine
    # answer_queries = true             # advertise and answer execution.query (default)

    [mqtt]                              # the broker: same keys as the engine's [mqtt]
    host = "127.0.0.1"
    port = 1883
    password_env = "RFQ_DEALER_MQTT_PASSWORD"

    [quoting]                           # the quoting model: the [dealers.simulated] table
    spread_bps = "20"
    last_look_reject_rate = 0.05
    units = ["BTC", "PH/s/day"]         # quantity units it trades; others are declined

    [market]                            # the desk's reference prices: the engine's [market]
    spot = { BTC = "40000" }
    vol = { BTC = "0.55" }
    rate = "0.05"

    [logging]
    level = "INFO"

Unknown keys are errors; errors name the file and the field, and exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from dealer_adapters.mqtt.config import MqttBrokerConfig, check_name, read_env
from dealer_adapters.simulated.config import SimulatedDealerConfig
from rfq_engine.config import ConfigError, LoggingConfig
from rfq_engine.configtypes import STRICT
from rfq_engine.domain import RfqError
from rfq_engine.pricing.config import MarketConfig

__all__ = ["DealerFile", "DealerSection", "load_dealer_file", "run_dealer_file"]


class DealerSection(BaseModel):
    model_config = STRICT

    id: str
    """The dealer id the engine knows this desk by (also its broker user and client id)."""
    secret_env: str
    """Environment variable holding the HMAC key shared with the engine (>= 16 bytes)."""
    answer_queries: bool = Field(default=True, strict=True)
    """Advertise (``status.features``) and answer ``execution.query``; false plays a desk
    that predates it (the engine then cannot ask it what became of an award)."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        return check_name(value, "dealer id")


class DealerFile(BaseModel):
    model_config = STRICT

    dealer: DealerSection
    mqtt: MqttBrokerConfig = MqttBrokerConfig()
    quoting: SimulatedDealerConfig = SimulatedDealerConfig()
    market: MarketConfig
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _check(self) -> DealerFile:
        if not self.quoting.online:
            raise ValueError("quoting.online: a bot is online while it runs; remove the key")
        return self


def _format(error: PydanticValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {path or '(top level)'}: {message}")
    return "\n".join(lines)


def load_dealer_file(path: str | Path) -> DealerFile:
    file = Path(path)
    try:
        data: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    try:
        return DealerFile.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(_format(exc, str(file))) from None


def run_dealer_file(path: str) -> int:
    from rfq_engine.logging import configure_logging

    try:
        config = load_dealer_file(path)
        secret = read_env(config.dealer.secret_env, "dealer.secret_env", os.environ).encode("utf-8")
        password = config.mqtt.password(os.environ)
    except RfqError as exc:  # ConfigError, ValidationError
        from rfq_engine.cli.commands import report

        return report(exc)
    if len(secret) < 16:
        print(f"rfq: {path}: dealer.secret_env: the secret is {len(secret)} bytes; use at least 16",
              file=sys.stderr)
        return 1
    configure_logging(config.logging.level, config.logging.json_lines)
    return asyncio.run(_serve(config, secret, password))


async def _serve(config: DealerFile, secret: bytes, password: str | None) -> int:
    from dealer_tools.bot import DealerBot
    from rfq_engine.domain import DealerId, utc_now

    market = config.market
    bot = DealerBot(DealerId(config.dealer.id), secret=secret, broker=config.mqtt, password=password,
                    quoting=config.quoting, market=lambda: market.to_snapshot(utc_now()),
                    answer_queries=config.dealer.answer_queries)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    where = f"{config.mqtt.host}:{config.mqtt.port}"
    print(f"dealer {config.dealer.id}: connecting to {where} (prefix {config.mqtt.prefix}); "
          "SIGINT/SIGTERM to stop", file=sys.stderr, flush=True)
    try:
        connected = await bot.start()
        if not connected:
            link = bot.link
            error = link.last_error if link is not None else ""
            print(f"dealer {config.dealer.id}: broker not reachable yet ({error}); retrying",
                  file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await bot.close()
    print(f"dealer {config.dealer.id}: stopped", file=sys.stderr, flush=True)
    return 0
