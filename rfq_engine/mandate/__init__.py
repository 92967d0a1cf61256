"""The mandate: what leadership allows, as pure rules the engine applies to every RFQ.

Build a ``Mandate`` from a validated ``MandateConfig`` and ask it for ``Verdict``s:
``check_pre_trade`` before sending, ``approval_verdict`` for the second-person rule,
``check_quote`` per quote, ``check_min_quotes`` before awarding. Nothing here reads a
clock or does I/O; the engine passes today's date, usage and exposures in.
"""

from rfq_engine.mandate.config import DealerLimit, MandateConfig
from rfq_engine.mandate.mandate import Mandate
from rfq_engine.mandate.rules import (
    ApprovalThreshold,
    DealerCredit,
    DealersApproved,
    EnoughDealers,
    HedgeRatio,
    InstrumentAllowed,
    MaxTenor,
    MinQuotes,
    NotionalCap,
    PreTradeContext,
    PreTradeRule,
    PriceTolerance,
    QuoteContext,
    QuoteRule,
    ReferenceRequired,
    UnderlyingAllowed,
    distance_bps,
)
from rfq_engine.mandate.verdict import Verdict, all_passed, failures

__all__ = [
    "ApprovalThreshold",
    "DealerCredit",
    "DealerLimit",
    "DealersApproved",
    "EnoughDealers",
    "HedgeRatio",
    "InstrumentAllowed",
    "Mandate",
    "MandateConfig",
    "MaxTenor",
    "MinQuotes",
    "NotionalCap",
    "PreTradeContext",
    "PreTradeRule",
    "PriceTolerance",
    "QuoteContext",
    "QuoteRule",
    "ReferenceRequired",
    "UnderlyingAllowed",
    "Verdict",
    "all_passed",
    "distance_bps",
    "failures",
]
