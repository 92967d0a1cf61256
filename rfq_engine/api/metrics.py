"""Prometheus metrics, fed by the engine's event stream (a listener: never blocks).

- ``rfq_outcomes_total{state}``: RFQs by terminal state;
- ``rfq_quote_response_seconds{dealer}``: from the RFQ opening to each dealer's first answer;
- ``rfq_award_latency_seconds``: from the window closing to the award being durable;
- ``rfq_audit_queue_depth`` / ``rfq_open_rfqs``: read at scrape time;
- ``rfq_audit_store_up`` (1, or 0 while commits fail or the writer stopped) and
  ``rfq_audit_failed_commits`` (attempts that failed, each retried), ``rfq_audit_slow_commits``
  and ``rfq_audit_commit_seconds_max`` (a slow disk: no failure, but every decision waits):
  read at scrape time; ``rfq_audit_commits``, ``rfq_audit_events_committed`` and
  ``rfq_audit_table_updates`` (the store's write load: transactions per event);
  ``rfq_audit_wait_seconds``, a histogram of how long each batch's oldest event waited from
  its append to durable (queue and commit: what an acknowledged call waited for the store).
- ``rfq_risk_alerts_total{kind}`` (risk alerts raised) and ``rfq_risk_alerts_active`` (raised,
  not cleared yet): from ``risk.alerted`` events and the risk watch.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Collection, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from rfq_engine.domain.events import (
    AwardDecided,
    QuoteDeclined,
    QuoteReceived,
    RfqStateChanged,
    RiskAlerted,
)
from rfq_engine.domain.states import TERMINAL, RfqState
from rfq_engine.engine import EngineEvent, RfqEngine
from rfq_engine.readmodels.events import listened
from rfq_engine.store.batch import WAIT_BUCKETS

__all__ = ["Metrics"]


def _writer_stat(engine: RfqEngine, field: str) -> float:
    return float(getattr(getattr(engine.store, "stats", None), field, 0))


class _AuditWaits(Collector):
    """``rfq_audit_wait_seconds``: the writer's tally (``WriterStats.waits``) read at scrape."""

    def __init__(self, engine: RfqEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[HistogramMetricFamily]:
        stats = getattr(self._engine.store, "stats", None)
        waits = list(getattr(stats, "waits", None) or [0] * (len(WAIT_BUCKETS) + 1))
        bounds = [*(str(b) for b in WAIT_BUCKETS), "+Inf"]
        yield HistogramMetricFamily(
            "rfq_audit_wait_seconds", "Per audit batch, how long its oldest event waited from "
            "its append to durable (queue and commit): what an acknowledged call waited",
            buckets=list(zip(bounds, itertools.accumulate(waits), strict=True)),
            sum_value=float(getattr(stats, "wait_s", 0.0)))


class Metrics:
    def __init__(self, engine: RfqEngine) -> None:
        self.registry = CollectorRegistry()
        self.outcomes = Counter("rfq_outcomes", "RFQs by terminal state", ["state"],
                                registry=self.registry)
        self.response = Histogram(
            "rfq_quote_response_seconds", "Time from the RFQ opening to a dealer's first answer",
            ["dealer"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.award_latency = Histogram(
            "rfq_award_latency_seconds", "Time from the window closing to the award being durable",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1))
        queue = Gauge("rfq_audit_queue_depth", "Audit events queued, not yet durable",
                      registry=self.registry)
        queue.set_function(lambda: engine.store.queue_depth)
        open_rfqs = Gauge("rfq_open_rfqs", "RFQs in a non-terminal state", registry=self.registry)
        open_rfqs.set_function(lambda: len(engine.open_rfqs))
        store_up = Gauge("rfq_audit_store_up", "1 while the audit store takes commits, 0 while "
                         "they fail (retried; new RFQs refused) or its writer stopped",
                         registry=self.registry)
        store_up.set_function(lambda: 1 if engine.store.health.up else 0)
        failed = Gauge("rfq_audit_failed_commits", "Audit commit attempts that failed (each is "
                       "retried; no event is dropped)", registry=self.registry)
        failed.set_function(lambda: getattr(getattr(engine.store, "stats", None),
                                            "failed_commits", 0))
        slow = Gauge("rfq_audit_slow_commits", "Audit batches that took over 0.5 s to become "
                     "durable (every decision waits for its commit)", registry=self.registry)
        slow.set_function(lambda: getattr(getattr(engine.store, "stats", None), "slow_commits", 0))
        longest = Gauge("rfq_audit_commit_seconds_max", "The longest an audit batch took to "
                        "become durable, retries included", registry=self.registry)
        longest.set_function(lambda: getattr(getattr(engine.store, "stats", None),
                                             "longest_commit_s", 0.0))
        for name, field, text in (
                ("rfq_audit_commits", "batches", "Audit batches committed (one durable "
                 "transaction each)"),
                ("rfq_audit_events_committed", "events", "Audit events committed"),
                ("rfq_audit_table_updates", "settles", "Query-table transactions after the "
                 "commits (SQLite; under load one for several batches)")):
            gauge = Gauge(name, text, registry=self.registry)
            gauge.set_function(functools.partial(_writer_stat, engine, field))
        self.registry.register(_AuditWaits(engine))
        self.risk_alerts = Counter("rfq_risk_alerts", "Risk alerts raised, by kind (docs/risk.md)",
                                   ["kind"], registry=self.registry)
        self._risk_seen: set[tuple[str, str]] = set()
        self._risk_active: Callable[[], Collection[object]] = lambda: self._risk_seen
        active = Gauge("rfq_risk_alerts_active", "Risk alerts raised and not cleared yet",
                       registry=self.registry)
        active.set_function(lambda: len(self._risk_active()))
        self._opened: dict[str, float] = {}
        self._answered: dict[str, set[str]] = {}  # the dealers that answered, by open RFQ
        self._closed: dict[str, float] = {}
        engine.add_listener(self.on_event)

    def on_event(self, event: EngineEvent) -> None:
        rfq = event.rfq_id or ""
        now = time.monotonic()
        match listened(event):
            case RfqStateChanged(to=RfqState.OPEN):
                self._opened[rfq] = now
            case RfqStateChanged(from_state=RfqState.OPEN, to=RfqState.AWARDING):
                self._closed[rfq] = now
            case RfqStateChanged(to=to) if to in TERMINAL:
                self.outcomes.labels(state=to).inc()
                self._opened.pop(rfq, None)
                self._closed.pop(rfq, None)
                self._answered.pop(rfq, None)
            case QuoteReceived(dealer_id=dealer) | QuoteDeclined(dealer_id=dealer):
                answered = self._answered.setdefault(rfq, set()) if rfq in self._opened else None
                if answered is not None and dealer not in answered:
                    answered.add(dealer)
                    self.response.labels(dealer=dealer).observe(now - self._opened[rfq])
            case AwardDecided() if rfq in self._closed:
                self.award_latency.observe(now - self._closed.pop(rfq))
            case RiskAlerted(kind=kind, subject=subject, state="raised"):
                self.risk_alerts.labels(kind=kind).inc()
                self._risk_seen.add((kind, subject))
            case RiskAlerted(kind=kind, subject=subject):
                self._risk_seen.discard((kind, subject))

    def watch_risk(self, active: Callable[[], Collection[object]]) -> None:
        """Read the active risk alerts from the risk watch (which knows those raised before a
        restart) rather than from the events seen since this process started."""
        self._risk_active = active

    def render(self) -> bytes:
        return generate_latest(self.registry)
