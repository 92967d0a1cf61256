"""Settings of the MQTT transport: the broker connection and each MQTT dealer's table.

``MqttBrokerConfig`` is the top-level ``[mqtt]`` section of the engine's ``rfq.toml``
(one connection serves every ``kind = "mqtt"`` dealer) and the ``[mqtt]`` section of
a reference dealer bot's ``dealer.toml``. ``MqttDealerConfig`` is one dealer's
``[dealers.mqtt]`` table::

    [mqtt]
    host = "broker.example.com"
    port = 8883
    username = "rfq-engine"
    password_env = "RFQ_MQTT_PASSWORD"
    [mqtt.tls]
    ca_file = "/etc/rfq/broker-ca.pem"

    [[dealers]]
    id = "desk-a"
    kind = "mqtt"
    [dealers.mqtt]
    secret_env = "RFQ_DESK_A_SECRET"      # HMAC key shared with desk-a
    password_env = "RFQ_DESK_A_MQTT_PASSWORD"  # desk-a's broker login (broker-config only)

Secrets never live in the file: every ``*_env`` field names an environment variable,
read when the adapter (or ``rfq broker-config``) is built; a missing one is a
``ValidationError`` naming the field and the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from rfq_engine.configtypes import STRICT
from rfq_engine.domain import ValidationError

__all__ = [
    "DEFAULT_ENGINE_USER",
    "DEFAULT_PREFIX",
    "MIN_SECRET_BYTES",
    "MqttBrokerConfig",
    "MqttDealerConfig",
    "MqttTlsConfig",
    "check_name",
    "read_env",
]

DEFAULT_PREFIX = "rfq/v1"
DEFAULT_ENGINE_USER = "rfq-engine"
MIN_SECRET_BYTES = 16
"""A shared HMAC secret shorter than this is refused (use e.g. ``openssl rand -hex 32``)."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A broker user name or client id: safe in a Mosquitto password/ACL file and a topic."""
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _check_env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits, '_')")
    return value


def read_env(name: str, field: str, environ: Mapping[str, str]) -> str:
    """The value of environment variable ``name``; a ``ValidationError`` (a ``ValueError``)
    naming ``field`` if it is unset or empty."""
    value = environ.get(name)
    if not value:
        raise ValidationError(field, f"environment variable {name} is not set")
    return value


class MqttTlsConfig(BaseModel):
    """``[mqtt.tls]``: connect over TLS (use it in production). Omit the table for plain TCP."""

    model_config = STRICT

    ca_file: Path | None = None
    """CA bundle that signed the broker's certificate; None trusts the system's CAs."""
    cert_file: Path | None = None
    """Client certificate, when the broker asks for one (mutual TLS)."""
    key_file: Path | None = None
    """Private key of ``cert_file`` (PEM, unencrypted; keep it readable by this user only)."""
    verify_hostname: bool = Field(default=True, strict=True)
    """Check that the broker's certificate names ``host``. Turn off only for tests."""

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self


class MqttBrokerConfig(BaseModel):
    """The broker connection (``[mqtt]``). Defaults suit a broker on the same machine."""

    model_config = STRICT

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535, strict=True)
    prefix: str = DEFAULT_PREFIX
    """Topic prefix; every topic is ``{prefix}/dealers/{dealer_id}/{rfq|quote|award|execution|status}``."""
    username: str | None = None
    """Broker login; default ``rfq-engine`` for the engine, the dealer id for a dealer bot."""
    password_env: str | None = None
    """Environment variable holding the broker password (None: log in without one)."""
    client_id: str | None = None
    """Fixed MQTT client id, so the broker keeps the persistent session across reconnects
    and restarts; default: the user name. (The generated Mosquitto config sets
    ``use_username_as_clientid``, so there the user name is the client id anyway.)"""
    keepalive_s: int = Field(default=30, ge=2, le=3600, strict=True)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """How long one connection attempt (TCP, TLS, CONNACK, SUBACK) may take; also how long
    start-up waits for the first connection before carrying on in the background."""
    reconnect_initial_ms: int = Field(default=100, ge=10, le=60_000, strict=True)
    reconnect_max_ms: int = Field(default=5000, ge=10, le=300_000, strict=True)
    """Backoff cap: after a lost connection the delay doubles from ``reconnect_initial_ms``
    (with jitter) up to this."""
    queue_bound: int = Field(default=10_000, ge=10, le=1_000_000, strict=True)
    """Incoming messages waiting to be handed on. A message is acknowledged to the broker
    only once handed on; if the queue is ever full the message is not acknowledged and the
    connection is re-made, so the broker delivers it again (nothing acknowledged is lost)."""
    max_inflight: int = Field(default=1000, ge=1, le=65_535, strict=True)
    """QoS 1 messages this client may have published and not yet had acknowledged; more wait
    in order inside the client. The generated broker config lets as many flow the other way
    (``max_inflight_messages``). paho's default, 20, held 64 RFQs to 10 dealers back by
    whole round trips."""
    max_message_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024, strict=True)
    """A larger inbound payload is rejected (and audited) without being parsed."""
    tcp_nodelay: bool = Field(default=True, strict=True)
    """Disable Nagle's algorithm on the socket. Leave it on: without it a QoS 1 round
    trip waits on delayed ACKs (about 88 ms on loopback instead of about 0.5 ms; see
    docs/performance.md). It exists so the benchmark can show the difference."""
    query_timeout_ms: int = Field(default=3000, ge=10, le=120_000, strict=True)
    """Engine only: how long ``query_execution`` waits for a dealer's answer to an
    ``execution.query`` before it says UNKNOWN (keep it below the engine's
    ``lookup_timeout_ms``, default 5000)."""
    tls: MqttTlsConfig | None = None

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        segments = value.split("/")
        if not value or value.startswith("$") or not all(_SEGMENT.match(s) for s in segments):
            raise ValueError(
                f"prefix {value!r} must be '/'-separated segments of letters, digits, '.', '_' or '-' "
                "(no wildcards, no empty segment, no leading '$' or '/')"
            )
        return value

    @field_validator("username", "client_id")
    @classmethod
    def _check_names(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "name")

    @field_validator("password_env")
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return _check_env_name(value)

    @model_validator(mode="after")
    def _check_backoff(self) -> MqttBrokerConfig:
        if self.reconnect_max_ms < self.reconnect_initial_ms:
            raise ValueError("reconnect_max_ms must be at least reconnect_initial_ms")
        return self

    def password(self, environ: Mapping[str, str]) -> str | None:
        """The broker password from ``password_env``; None when no variable is configured."""
        if self.password_env is None:
            return None
        return read_env(self.password_env, "mqtt.password_env", environ)


class MqttDealerConfig(BaseModel):
    """One dealer's ``[dealers.mqtt]`` table."""

    model_config = STRICT

    secret_env: str
    """Environment variable holding the HMAC-SHA256 key shared with this dealer (both
    directions are signed with it); at least 16 bytes."""
    password_env: str | None = None
    """Environment variable holding the dealer's broker password. Only ``rfq
    broker-config`` reads it (to write the broker's password file); the engine never does."""

    @field_validator("secret_env", "password_env")
    @classmethod
    def _check_env(cls, value: str | None) -> str | None:
        return _check_env_name(value)

    def secret(self, dealer_id: str, environ: Mapping[str, str]) -> bytes:
        """The shared secret as bytes (UTF-8 of the variable's value)."""
        value = read_env(self.secret_env, f"dealer {dealer_id!r}: [dealers.mqtt].secret_env", environ)
        secret = value.encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValidationError(
                f"dealer {dealer_id!r}: [dealers.mqtt].secret_env",
                f"the secret in {self.secret_env} is {len(secret)} bytes; use at least "
                f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
            )
        return secret
