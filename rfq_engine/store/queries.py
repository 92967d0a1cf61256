"""The query tables' read rules as pure functions over rows, with no database.

The in-memory store answers every query with them. The SQL store answers with SQL, and
uses them too where it must merge rows its SQL cannot see yet: a read-only reader of a
SQLite store whose query tables are behind the events (sql.py, ``_Overlay``). One set of
rules, so both answers agree on filters and order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from rfq_engine.store.base import AwardRow, FillRow, QuoteRow, RfqRow

__all__ = [
    "find_rfq",
    "select_awards",
    "select_fills",
    "select_quotes",
    "select_rfqs",
    "sum_notional",
]


def _newest_first_key(row: RfqRow) -> tuple[datetime, str]:
    return row.created_at, row.rfq_id


def find_rfq(rows: Iterable[RfqRow], requester: str, client_rfq_id: str) -> str | None:
    """The newest rfq with this requester and client id."""
    found = [r for r in rows if r.requester == requester and r.client_rfq_id == client_rfq_id]
    return max(found, key=_newest_first_key).rfq_id if found else None


def select_rfqs(
    rows: Iterable[RfqRow], states: Sequence[str] | None = None, limit: int | None = None
) -> list[RfqRow]:
    """Newest first, optionally of some states only."""
    chosen = [r for r in rows if states is None or r.state in states]
    chosen.sort(key=_newest_first_key, reverse=True)
    return chosen if limit is None else chosen[:limit]


def select_quotes(rows: Iterable[QuoteRow], rfq_id: str) -> list[QuoteRow]:
    chosen = [q for q in rows if q.rfq_id == rfq_id]
    return sorted(chosen, key=lambda q: (q.received_at, q.dealer_id, q.quote_id))


def select_awards(rows: Iterable[AwardRow], rfq_id: str) -> list[AwardRow]:
    chosen = [a for a in rows if a.rfq_id == rfq_id]
    return sorted(chosen, key=lambda a: (a.confirm_by, a.execution_id))


def select_fills(
    rows: Iterable[FillRow], rfq_id: str | None = None, dealer_id: str | None = None,
    since: datetime | None = None,
) -> list[FillRow]:
    chosen = [
        f for f in rows
        if (rfq_id is None or f.rfq_id == rfq_id)
        and (dealer_id is None or f.dealer_id == dealer_id)
        and (since is None or f.filled_at >= since)
    ]
    return sorted(chosen, key=lambda f: (f.filled_at, f.fill_id))


def sum_notional(
    rows: Iterable[FillRow], *, since: datetime | None = None, mandate: str | None = None,
    dealer_id: str | None = None, open_on: date | None = None,
) -> Decimal:
    """Exact: the notionals are Decimals (SQL SUM over decimal text would use floats)."""
    return sum(
        (
            f.notional for f in rows
            if (since is None or f.filled_at >= since)
            and (mandate is None or f.mandate == mandate)
            and (dealer_id is None or f.dealer_id == dealer_id)
            and (open_on is None or f.last_date is None or f.last_date >= open_on)
        ),
        Decimal(0),
    )
