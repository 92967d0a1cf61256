"""Registers ``kind = "rest"``: one ``RestDealers`` for every REST desk (each desk gets its
own HTTP session when it starts). Validating a ``[dealers.rest]`` table imports no aiohttp."""

from __future__ import annotations

from collections.abc import Mapping

from dealer_adapters.kind import BuildContext, DealerKind
from dealer_adapters.protocol import DealerAdapter
from dealer_adapters.rest.config import RestDealerConfig
from rfq_engine.domain import DealerId

__all__ = ["KIND"]


def build(dealers: Mapping[DealerId, RestDealerConfig], context: BuildContext) -> DealerAdapter:
    from dealer_adapters.rest.adapter import RestDealers

    return RestDealers(dealers)


KIND = DealerKind("rest", RestDealerConfig, build)
