"""The query tables' read rules as pure functions over rows, with no database.

The in-memory store answers every query with them. The SQL store answers with SQL, and
uses them too where it must merge rows its SQL cannot see yet: a read-only reader of a
SQLite store whose query tables are behind the events (sql_reads.py). One set of rules,
so both answers agree on filters and order: ``RfqQuery`` and ``FillQuery`` (base.py) say
what they mean, and sql_reads.py's WHERE clauses say it again in SQL.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from rfq_engine.store.base import AwardRow, FillQuery, FillRow, QuoteRow, RfqQuery, RfqRow

__all__ = [
    "fill_matches",
    "find_rfq",
    "newest_first_key",
    "rfq_matches",
    "select_awards",
    "select_fills",
    "select_quotes",
    "select_rfqs",
    "sum_notional",
]


def newest_first_key(row: RfqRow) -> tuple[datetime, str]:
    """The RFQ order, descending: also the keyset cursor's key."""
    return row.created_at, row.rfq_id


def find_rfq(rows: Iterable[RfqRow], requester: str, client_rfq_id: str) -> str | None:
    """The newest rfq with this requester and client id."""
    found = [r for r in rows if r.requester == requester and r.client_rfq_id == client_rfq_id]
    return max(found, key=newest_first_key).rfq_id if found else None


def rfq_matches(row: RfqRow, q: RfqQuery) -> bool:
    return (
        (q.states is None or row.state in q.states)
        and (q.requester is None or row.requester == q.requester)
        and (q.mandate is None or row.mandate == q.mandate)
        and (q.created_since is None or row.created_at >= q.created_since)
        and (q.created_until is None or row.created_at < q.created_until)
        and (q.after is None or newest_first_key(row) < (q.after.created_at, q.after.rfq_id))
    )


def select_rfqs(rows: Iterable[RfqRow], query: RfqQuery) -> list[RfqRow]:
    """The rows ``query`` matches, newest first, at most ``query.limit`` of them."""
    chosen = (r for r in rows if rfq_matches(r, query))
    if query.limit is None:
        return sorted(chosen, key=newest_first_key, reverse=True)
    return heapq.nlargest(query.limit, chosen, key=newest_first_key)


def select_quotes(rows: Iterable[QuoteRow], rfq_id: str) -> list[QuoteRow]:
    chosen = [q for q in rows if q.rfq_id == rfq_id]
    return sorted(chosen, key=lambda q: (q.received_at, q.dealer_id, q.quote_id))


def select_awards(rows: Iterable[AwardRow], rfq_id: str) -> list[AwardRow]:
    chosen = [a for a in rows if a.rfq_id == rfq_id]
    return sorted(chosen, key=lambda a: (a.confirm_by, a.execution_id))


def fill_matches(row: FillRow, q: FillQuery) -> bool:
    return (
        (q.rfq_id is None or row.rfq_id == q.rfq_id)
        and (q.dealer_id is None or row.dealer_id == q.dealer_id)
        and (q.mandate is None or row.mandate == q.mandate)
        and (q.since is None or row.filled_at >= q.since)
        and (q.open_on is None or row.last_date is None or row.last_date >= q.open_on)
    )


def select_fills(rows: Iterable[FillRow], query: FillQuery) -> list[FillRow]:
    chosen = [f for f in rows if fill_matches(f, query)]
    return sorted(chosen, key=lambda f: (f.filled_at, f.fill_id))


def sum_notional(rows: Iterable[FillRow], query: FillQuery) -> Decimal:
    """Exact: the notionals are Decimals (SQL SUM over decimal text would use floats)."""
    return sum((f.notional for f in rows if fill_matches(f, query)), Decimal(0))
