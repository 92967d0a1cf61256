"""``/metrics``' per-event figures (``api.metrics.Metrics.on_event``), fed engine events
directly: a dealer's response time counts its first answer to an open RFQ only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rfq_engine.api.metrics import Metrics
from rfq_engine.domain.events import QuoteDeclined, RfqStateChanged
from rfq_engine.engine import EngineEvent


def test_a_dealer_is_timed_on_its_first_answer_to_an_open_rfq_only() -> None:
    store = SimpleNamespace(queue_depth=0, health=SimpleNamespace(up=True))
    engine: Any = SimpleNamespace(add_listener=lambda listener: None, store=store,
                                  open_rfqs=[])
    metrics = Metrics(engine)

    def feed(rfq_id: str, event: Any) -> None:
        metrics.on_event(EngineEvent(rfq_id, event.TYPE, "engine", {}, event))

    feed("r1", RfqStateChanged("created", "open", ""))
    feed("r1", QuoteDeclined("d1"))
    feed("r1", QuoteDeclined("d1"))  # a second answer: not a response time
    feed("r1", QuoteDeclined("d2"))
    feed("r2", QuoteDeclined("d1"))  # never opened
    feed("r1", RfqStateChanged("open", "not_filled", "no quote passed"))
    feed("r1", QuoteDeclined("d3"))  # after the RFQ ended

    def answers(dealer: str) -> float | None:
        return metrics.registry.get_sample_value("rfq_quote_response_seconds_count", {"dealer": dealer})

    assert (answers("d1"), answers("d2"), answers("d3")) == (1.0, 1.0, None)
    assert metrics._answered == {}  # nothing kept for an RFQ that ended
    assert metrics.registry.get_sample_value("rfq_outcomes_total", {"state": "not_filled"}) == 1.0
