"""Wire one process from a config: store, reference prices, dealer adapters, mandates, engine.

Shared by the CLI commands and ``rfq serve`` so every entry point builds the
engine the same way. Heavy adapters are imported by the factory only when configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dealer_adapters.factory import build_adapters
from dealer_adapters.protocol import DealerAdapter
from rfq_engine.config import AppConfig
from rfq_engine.domain import utc_now
from rfq_engine.engine import RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider, ReferencePriceProvider
from rfq_engine.store import AuditStore, open_store
from rfq_engine.store.leader import Candidate

if TYPE_CHECKING:
    from dealer_adapters.ccxt.margin import MarginReader

__all__ = ["App", "open_app", "open_configured_store", "venue_margin_reader"]


@dataclass
class App:
    config: AppConfig
    store: AuditStore
    engine: RfqEngine
    reference: ReferencePriceProvider
    adapters: list[DealerAdapter]

    async def close(self) -> None:
        """Stop the engine (open RFQs end with an audit event saying why), then the store."""
        try:
            await self.engine.stop()
        finally:
            await _close_reference(self.reference)
            await self.store.close()


async def _close_reference(reference: ReferencePriceProvider) -> None:
    """A live provider (``[reference]``) holds an exchange connection; the model one holds nothing."""
    close = getattr(reference, "close", None)
    if close is not None:
        await close()


def venue_margin_reader(config: AppConfig, environ: Mapping[str, str] | None = None) -> MarginReader | None:
    """A reader of the margin accounts of the ccxt dealers that ``[risk.venues.<dealer>]`` states
    with ``read = true`` (the default), in its ``currency``; none when there is no such dealer.
    The ccxt package is imported only when there is one (it costs every command ~0.3 s)."""
    wanted = [spec for spec in config.dealers if spec.kind == "ccxt" and spec.id in config.risk.venues
              and config.risk.venues[spec.id].read]
    if not wanted:
        return None
    from dealer_adapters.ccxt.config import CcxtDealerConfig
    from dealer_adapters.ccxt.margin import MarginReader

    accounts: dict[str, tuple[CcxtDealerConfig, str]] = {}
    for spec in wanted:
        settings = spec.settings()
        if isinstance(settings, CcxtDealerConfig):
            accounts[spec.id] = (settings, config.risk.venues[spec.id].currency)
    return MarginReader(accounts, environ) if accounts else None


def open_configured_store(config: AppConfig, *, url: str | None = None,
                          readonly: bool = False, candidate: Candidate | None = None) -> AuditStore:
    # Without a configured path the store picks its default (``<db file>.head`` for SQLite).
    checkpoint = ... if config.store.checkpoint_path is None else config.store.checkpoint_path
    return open_store(url or config.store.resolved_url(), checkpoint_path=checkpoint,
                      readonly=readonly, sqlite_synchronous=config.store.sqlite_synchronous,
                      sqlite_cache_mib=config.store.sqlite_cache_mib,
                      witness=config.store.witness_path,
                      outage_limit_s=config.store.outage_limit_s, candidate=candidate)


async def open_app(config: AppConfig, *, store_url: str | None = None,
                   recover: bool = True, candidate: Candidate | None = None) -> App:
    """Open the store, build everything, start the engine (running recovery first). With a
    waiting ``candidate`` (rfq serve --ha) opening the store waits for the leadership."""
    store = open_configured_store(config, url=store_url, candidate=candidate)
    await store.open()
    live: ReferencePriceProvider | None = None
    try:
        # The [market] section is a fixed, hand-written market: its age is not a signal,
        # so the staleness limit applies only to live feeds (max_age=None here).
        snapshot = config.market.to_snapshot(utc_now())
        reference: ReferencePriceProvider = ModelReferenceProvider(snapshot, max_age=None, source="config")
        if config.reference is not None:  # live prices from an exchange; ccxt is imported only then
            from rfq_engine.pricing.ccxt_reference import open_ccxt_reference

            reference = live = await open_ccxt_reference(config.reference, lambda: snapshot)
        adapters = build_adapters(config.dealers, market=lambda: snapshot, mqtt=config.mqtt)
        engine = RfqEngine(
            store=store,
            adapters=adapters,
            mandates={name: Mandate(name, m) for name, m in config.mandates.items()},
            reference=reference,
            config=config.engine,
        )
        await engine.start(recover=recover)
    except BaseException:
        if live is not None:
            await _close_reference(live)
        await store.close()
        raise
    return App(config, store, engine, reference, adapters)
