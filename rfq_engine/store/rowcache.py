"""The writer's cache of projection rows it wrote recently.

Why it is safe: only the single writer (guaranteed by the lock) changes the projection
tables, so a row this writer committed stays current until this writer changes it again.
Events of one RFQ arrive within seconds of each other, so most rows a batch touches were
written by one of the previous batches; serving them from here skips a SELECT and the
row decoding (measured: about a quarter of the commit time with 400 RFQs in flight).

Rules that keep it coherent: rows enter only after their commit succeeded
(``remember``), and the whole cache is dropped when a commit raises (``clear``), even if
the commit later turns out to have landed.

How much it keeps: the rows of the RFQs in flight and of those that just ended, the least
recently written dropped first: ``RFQS_KEPT`` RFQs, awards and fills, ``QUOTES_KEPT``
quotes (several per RFQ), enough for 1,000 RFQs in flight to 10 dealers. Full, it holds
about 23 MiB (measured with 4,893 RFQs, 18,000 quotes, 4,855 awards and fills; the former
bound, 20,000 rows in every table, kept four times as many RFQs, awards and fills and took
minutes to fill at 100 RFQs/s).
"""

from __future__ import annotations

from typing import Any, TypeVar

from rfq_engine.store.projection import Dirty, Tables, Touched

__all__ = ["QUOTES_KEPT", "RFQS_KEPT", "RowCache"]

RFQS_KEPT = 5_000
QUOTES_KEPT = 20_000

K = TypeVar("K")


def _put(target: dict[K, Any], key: K, value: Any) -> None:
    target.pop(key, None)  # re-insert: dict order is then least recently written first
    target[key] = value


def _trim(target: dict[Any, Any], limit: int) -> None:
    if len(target) > limit:
        for key in list(target)[: len(target) - limit * 9 // 10]:
            del target[key]


class RowCache:
    __slots__ = ("_limit", "_quote_limit", "_rows")

    def __init__(self, rows: int = RFQS_KEPT, quotes: int = QUOTES_KEPT) -> None:
        self._limit = rows
        self._quote_limit = quotes
        self._rows = Tables()

    def split(self, keys: Touched) -> tuple[Tables, Touched]:
        """(cached rows for ``keys``, the keys that must be read from the database)."""
        rows, missing = Tables(), Touched()
        for rfq_id in keys.rfq_ids:
            if (rfq := self._rows.rfqs.get(rfq_id)) is not None:
                rows.rfqs[rfq_id] = rfq
            else:
                missing.rfq_ids.add(rfq_id)
        for quote_key in keys.quote_keys:
            if (quote := self._rows.quotes.get(quote_key)) is not None:
                rows.quotes[quote_key] = quote
            else:
                missing.quote_keys.add(quote_key)
        for execution_id in keys.execution_ids:
            if (award := self._rows.awards.get(execution_id)) is not None:
                rows.awards[execution_id] = award
            else:
                missing.execution_ids.add(execution_id)
        for fill_id in keys.fill_ids:
            if (fill := self._rows.fills.get(fill_id)) is not None:
                rows.fills[fill_id] = fill
            else:
                missing.fill_ids.add(fill_id)
        return rows, missing

    def remember(self, tables: Tables, dirty: Dirty) -> None:
        """After a successful commit: the rows it wrote are now the database's rows."""
        for rfq_id in dirty.rfqs:
            _put(self._rows.rfqs, rfq_id, tables.rfqs[rfq_id])
        for quote_key in dirty.quotes:
            _put(self._rows.quotes, quote_key, tables.quotes[quote_key])
        for execution_id in dirty.awards:
            _put(self._rows.awards, execution_id, tables.awards[execution_id])
        for fill_id in dirty.fills:
            _put(self._rows.fills, fill_id, tables.fills[fill_id])
        _trim(self._rows.quotes, self._quote_limit)
        for table in (self._rows.rfqs, self._rows.awards, self._rows.fills):
            _trim(table, self._limit)

    def clear(self) -> None:
        self._rows = Tables()
