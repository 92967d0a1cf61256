"""Registers ``kind = "fix"``: one ``FixDealers`` for every FIX desk (a FIX 4.4 initiator
session each). Validating a ``[dealers.fix]`` table imports no session code."""

from __future__ import annotations

from collections.abc import Mapping

from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.kind import BuildContext, DealerKind
from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId

__all__ = ["KIND"]


def build(dealers: Mapping[DealerId, FixDealerConfig], context: BuildContext) -> DealerAdapter:
    from dealer_adapters.fix.adapter import FixDealers

    return FixDealers(dealers)


KIND = DealerKind("fix", FixDealerConfig, build)
