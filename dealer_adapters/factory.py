"""Build dealer adapters from the ``[[dealers]]`` entries of the engine's TOML config.

One entry per dealer::

    [[dealers]]
    id = "desk-a"
    kind = "simulated"

    [dealers.simulated]          # the kind's own settings (optional for "simulated")
    spread_bps = 20
    seed = 7

A registry, not a chain of cases: ``KINDS`` maps each kind's name to its ``factory``
module, whose ``KIND`` (``dealer_adapters.kind.DealerKind``) gives the model of the
``[dealers.<kind>]`` table and the builder of the kind's one adapter. Adding a kind is a
package that follows the template (``docs/architecture.md``, "Dealer adapters: one
template") and one line in ``KINDS``; nothing here changes otherwise.

Why lazy imports: a kind's factory module is imported only when an entry of that kind is
validated or built, never at the top of this module, so importing the factory (``rfq
--help``, config checks) does not pull in MQTT or ccxt; a factory module imports its
kind's ``config`` only, and the adapter when it builds. An unknown kind is a clear error
rather than a silently ignored dealer.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from dealer_adapters.kind import BuildContext, DealerKind
from rfq_engine.domain import DealerId

if TYPE_CHECKING:
    from dealer_adapters.mqtt.config import MqttBrokerConfig
    from dealer_adapters.protocol import DealerAdapter
    from rfq_engine.domain.pricing import MarketSnapshot

__all__ = ["KINDS", "DealerSpec", "build_adapters", "dealer_kind"]

KINDS: dict[str, str] = {
    "simulated": "dealer_adapters.simulated.factory",
    "rest": "dealer_adapters.rest.factory",
    "mqtt": "dealer_adapters.mqtt.factory",
    "ccxt": "dealer_adapters.ccxt.factory",
    "fix": "dealer_adapters.fix.factory",
}
"""Implemented kinds and the module whose ``KIND`` registers each (imported only when used).
Adapters are built in this order."""

_DEALER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Safe as one MQTT topic segment and as a broker user name: no '/', '+', '#' or spaces."""


def dealer_kind(name: str) -> DealerKind[Any]:
    """The registered kind ``name`` (its factory module imported now); ``ValueError`` if unknown."""
    module_name = KINDS.get(name)
    if module_name is None:
        raise ValueError(f"unknown kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    kind = getattr(importlib.import_module(module_name), "KIND", None)
    if not isinstance(kind, DealerKind) or kind.name != name:
        raise RuntimeError(f"{module_name} does not register the dealer kind {name!r} as KIND")
    return kind


class DealerSpec(BaseModel):
    """One ``[[dealers]]`` entry: the dealer's id, its transport kind and that kind's table.

    The table is the key named after the kind (``[dealers.rest]`` for ``kind = "rest"``);
    any other key is an error (a table of another kind, or a typo).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    kind: str

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
        for key, value in (self.model_extra or {}).items():
            if key in KINDS and key != self.kind:
                msg = f"has a [dealers.{key}] table but its kind is {self.kind!r}"
                raise ValueError(f"dealer {self.id!r}: {msg}")
            if key not in KINDS:
                raise ValueError(f"dealer {self.id!r}: unknown key {key!r} (the kind's settings go in "
                                 f"[dealers.{self.kind}])")
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"dealer {self.id!r}: [dealers.{key}] must be a table")
        self.settings()  # validate the kind's table now, so a config error surfaces at load
        return self

    @property
    def dealer_id(self) -> DealerId:
        return DealerId(self.id)

    @property
    def table(self) -> dict[str, Any]:
        """The ``[dealers.<kind>]`` table as written (empty when absent)."""
        value = (self.model_extra or {}).get(self.kind)
        return dict(value) if isinstance(value, dict) else {}

    def settings(self) -> BaseModel:
        """The kind's validated settings (a ``SimulatedDealerConfig`` for "simulated").

        Errors are ``ValueError``s naming the dealer and the table.
        """
        config_cls: type[BaseModel] = dealer_kind(self.kind).config
        try:
            settings: BaseModel = config_cls.model_validate(self.table)
        except PydanticValidationError as exc:
            problems = "; ".join(
                ".".join([f"[dealers.{self.kind}]", *(str(part) for part in err["loc"])]) + f": {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(f"dealer {self.id!r}: {problems}") from None
        return settings


def build_adapters(
    specs: Sequence[DealerSpec],
    *,
    market: Callable[[], MarketSnapshot],
    mqtt: MqttBrokerConfig | None = None,
) -> list[DealerAdapter]:
    """One adapter per kind, serving every dealer of that kind (every simulated dealer shares
    one ``SimulatedDealers``, every MQTT dealer one broker connection).

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
    context = BuildContext(market=market, mqtt=mqtt)
    return [
        dealer_kind(name).build({spec.dealer_id: spec.settings() for spec in by_kind[name]}, context)
        for name in KINDS
        if name in by_kind
    ]
