"""RFQ block-trade execution: domain, mandate rules, engine, audit store, CLI.

Import the layers you need (``rfq_engine.domain``, ``rfq_engine.engine``,
``rfq_engine.store``...); this package module imports nothing heavy on purpose.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
