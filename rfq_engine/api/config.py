"""The ``[api]`` section: where ``rfq serve`` listens and who may call it.

Users carry bearer tokens, stored only as SHA-256 hashes (``rfq api hash-token`` prints
the hash of a token); a token itself never appears in the config, logs or responses.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from rfq_engine.configtypes import STRICT

__all__ = ["ROLES", "ApiConfig", "ApiUser", "Role"]

Role = Literal["trader", "approver", "compliance", "admin"]
ROLES: tuple[Role, ...] = ("trader", "approver", "compliance", "admin")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ApiUser(BaseModel):
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
    model_config = STRICT

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    users: list[ApiUser] = []
    stream_queue: int = Field(2000, ge=10, le=1_000_000)
    """Events buffered per WebSocket client; a client that falls further behind is dropped."""
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
