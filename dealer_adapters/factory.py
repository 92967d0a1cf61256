"""Build dealer adapters from the ``[[dealers]]`` entries of the engine's TOML config.

One entry per dealer::

    [[dealers]]
    id = "desk-a"
    kind = "simulated"

    [dealers.simulated]          # the kind's own settings (optional for "simulated")
    spread_bps = 20
    seed = 7

Why lazy imports: each kind's module is imported inside ``build_adapters`` (and when an
entry's settings are validated), never at the top of this module, so importing the
factory (``rfq --help``, config checks) does not pull in MQTT or ccxt. A ccxt dealer's
package is imported to validate its table, but ccxt itself only when the dealer starts
(``dealer_adapters.ccxt.exchange``). An unknown kind is a clear error rather than a
silently ignored dealer.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from rfq_engine.configtypes import STRICT
from rfq_engine.domain import DealerId

if TYPE_CHECKING:
    from dealer_adapters.mqtt.config import MqttBrokerConfig
    from dealer_adapters.protocol import DealerAdapter
    from rfq_engine.domain.pricing import MarketSnapshot

__all__ = ["KINDS", "DealerSpec", "build_adapters"]

KINDS: dict[str, str] = {"simulated": "dealer_adapters.simulated", "rest": "dealer_adapters.rest",
                         "mqtt": "dealer_adapters.mqtt", "ccxt": "dealer_adapters.ccxt"}
"""Implemented kinds and the module that serves each (imported only when used)."""

_DEALER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Safe as one MQTT topic segment and as a broker user name: no '/', '+', '#' or spaces."""


class DealerSpec(BaseModel):
    """One ``[[dealers]]`` entry: the dealer's id, its transport kind and that kind's table."""

    model_config = STRICT

    id: str
    kind: str
    simulated: dict[str, Any] | None = Field(default=None)
    """The ``[dealers.simulated]`` table: ``SimulatedDealerConfig`` fields."""
    rest: dict[str, Any] | None = Field(default=None)
    """The ``[dealers.rest]`` table: ``RestDealerConfig`` fields (``docs/dealers-rest.md``)."""
    mqtt: dict[str, Any] | None = Field(default=None)
    """The ``[dealers.mqtt]`` table: ``MqttDealerConfig`` fields (``docs/dealer-protocol.md``)."""
    ccxt: dict[str, Any] | None = Field(default=None)
    """The ``[dealers.ccxt]`` table: ``CcxtDealerConfig`` fields (``docs/dealers-ccxt.md``)."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _DEALER_ID.match(value):
            raise ValueError(
                f"dealer id {value!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> DealerSpec:
        if self.kind not in KINDS:
            raise ValueError(
                f"dealer {self.id!r}: unknown kind {self.kind!r}; "
                f"known kinds: {', '.join(sorted(KINDS))}"
            )
        for kind in KINDS:
            if kind != self.kind and getattr(self, kind) is not None:
                msg = f"has a [dealers.{kind}] table but its kind is {self.kind!r}"
                raise ValueError(f"dealer {self.id!r}: {msg}")
        self.settings()  # validate the kind's table now, so a config error surfaces at load
        return self

    @property
    def dealer_id(self) -> DealerId:
        return DealerId(self.id)

    def settings(self) -> BaseModel:
        """The kind's validated settings (a ``SimulatedDealerConfig`` for "simulated").

        Errors are ``ValueError``s naming the dealer and the table.
        """
        module = importlib.import_module(f"{KINDS[self.kind]}.config")
        config_cls: type[BaseModel] = getattr(module, _CONFIG_CLASSES[self.kind])
        raw = getattr(self, self.kind) or {}
        try:
            return config_cls.model_validate(raw)
        except PydanticValidationError as exc:
            problems = "; ".join(
                ".".join([f"[dealers.{self.kind}]", *(str(part) for part in err["loc"])]) + f": {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(f"dealer {self.id!r}: {problems}") from None


_CONFIG_CLASSES: dict[str, str] = {"simulated": "SimulatedDealerConfig", "rest": "RestDealerConfig",
                                   "mqtt": "MqttDealerConfig", "ccxt": "CcxtDealerConfig"}


def build_adapters(
    specs: Sequence[DealerSpec],
    *,
    market: Callable[[], MarketSnapshot],
    mqtt: MqttBrokerConfig | None = None,
) -> list[DealerAdapter]:
    """One adapter per transport: every simulated dealer shares one ``SimulatedDealers``.

    ``market`` is the simulated desks' view of the market. ``mqtt`` is the ``[mqtt]``
    broker connection, shared by every MQTT dealer (other kinds ignore it). Raises
    ``ValueError`` naming the dealer for a duplicate id or an unknown kind, or an MQTT
    dealer without ``mqtt`` or whose secret's environment variable is unset.
    """
    seen: set[str] = set()
    by_kind: dict[str, list[DealerSpec]] = {}
    for spec in specs:
        if spec.id in seen:
            raise ValueError(f"dealer {spec.id!r} is listed twice in [[dealers]]")
        seen.add(spec.id)
        if spec.kind not in KINDS:
            raise ValueError(f"dealer {spec.id!r}: unknown kind {spec.kind!r}")
        by_kind.setdefault(spec.kind, []).append(spec)
    adapters: list[DealerAdapter] = []
    simulated = by_kind.get("simulated")
    if simulated:
        module = importlib.import_module("dealer_adapters.simulated")
        configs = {spec.dealer_id: spec.settings() for spec in simulated}
        adapters.append(module.SimulatedDealers(configs, market))
    rest = by_kind.get("rest")
    if rest:  # one adapter for every REST desk; each desk gets its own HTTP session
        module = importlib.import_module("dealer_adapters.rest")
        adapters.append(module.RestDealers({spec.dealer_id: spec.settings() for spec in rest}))
    mqtt_specs = by_kind.get("mqtt")
    if mqtt_specs:  # one broker connection (one MqttDealers) for every MQTT desk
        if mqtt is None:
            ids = ", ".join(spec.id for spec in mqtt_specs)
            raise ValueError(f"dealer(s) {ids} have kind 'mqtt' but there is no [mqtt] section "
                             "(the broker connection)")
        module = importlib.import_module("dealer_adapters.mqtt.adapter")
        adapters.append(module.MqttDealers(mqtt, {spec.dealer_id: spec.settings() for spec in mqtt_specs}))
    ccxt_specs = by_kind.get("ccxt")
    if ccxt_specs:  # one adapter; each exchange dealer gets its own ccxt instance when it starts
        module = importlib.import_module("dealer_adapters.ccxt")
        adapters.append(module.CcxtDealers({spec.dealer_id: spec.settings() for spec in ccxt_specs}))
    return adapters
