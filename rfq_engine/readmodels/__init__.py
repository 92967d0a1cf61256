"""The read models of the audit log: what compliance, the desk and the dashboards read.

Each is built from stored events decoded into the typed events of ``domain.events``
(``events``: never from payload keys), and none writes:

- ``decision``: one RFQ's decision record (who was asked, every quote, the verdicts, the
  ranking, why the winner won, last look, fills, TCA, the chain position of every event);
- ``scorecard``: each dealer's response rate, speed, win rate, distance from best and last
  look rejects over a time range;
- ``events``: the typed-event readers the others and the listeners (metrics, live view)
  share.

Two read-side pieces live beside what they serve, where a layer would otherwise be
inverted: the store's query tables are maintained by ``store.projection`` inside the
commit transaction (the store sits below every reader), and the hedge programs' trades,
open RFQs and decisions by ``hedging.records``, in the hedge calculations' own row types.

This package imports nothing on import: ``from rfq_engine.readmodels.decision import ...``.
"""
