"""What one dealer kind registers: ``DealerKind``, exported as ``KIND`` by its ``factory`` module.

Every ``dealer_adapters/<kind>/`` package has a ``factory.py`` whose ``KIND`` names the
kind (its ``[[dealers]] kind`` and ``[dealers.<kind>]`` table), the pydantic model of that
table, and the builder of the one adapter that serves every dealer of the kind.
``dealer_adapters.factory`` lists the factory modules and imports one only when a config
uses its kind. A factory module imports its ``config`` only; the adapter (and its
libraries: aiohttp, aiomqtt, ccxt) is imported inside ``build``, so validating a config
stays cheap.

This module imports no kind: every kind depends on it, and kinds stay independent of each
other (an import-linter contract).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from rfq_engine.domain import DealerId

if TYPE_CHECKING:
    from dealer_adapters.protocol import DealerAdapter
    from rfq_engine.domain.pricing import MarketSnapshot

__all__ = ["BuildContext", "DealerKind"]

C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What the process gives the builders, beyond each dealer's own table."""

    market: Callable[[], MarketSnapshot]
    """The simulated desks' view of the market."""
    mqtt: Any = None
    """The ``[mqtt]`` broker connection (a ``MqttBrokerConfig``) shared by MQTT dealers, or None."""


@dataclass(frozen=True, slots=True)
class DealerKind(Generic[C]):
    name: str
    """The ``kind`` of a ``[[dealers]]`` entry, and the name of its ``[dealers.<name>]`` table."""
    config: type[C]
    """The model of the ``[dealers.<name>]`` table."""
    build: Callable[[Mapping[DealerId, C], BuildContext], DealerAdapter]
    """One adapter for every dealer of the kind (a ``ValueError`` naming a dealer when the
    process lacks what the kind needs)."""
