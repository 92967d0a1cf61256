"""Engine-side reference prices and the ``[market]`` config they can come from.

The models themselves are pure and live in ``rfq_engine.domain.pricing``; this package
adds what the engine needs around them: freshness, the audit form of a reference, and
the provider interface a live market-data feed implements.
"""

from rfq_engine.pricing.config import MarketConfig, Seconds
from rfq_engine.pricing.reference import (
    ModelReferenceProvider,
    PackageReference,
    ReferencePriceProvider,
    ReferenceUnavailable,
)

__all__ = [
    "MarketConfig",
    "ModelReferenceProvider",
    "PackageReference",
    "ReferencePriceProvider",
    "ReferenceUnavailable",
    "Seconds",
]
