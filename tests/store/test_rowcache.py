"""The writer's row cache is bounded per table, keeps the most recently written rows, and
serves exactly what was remembered (rows are opaque to it: plain objects stand in here)."""

from __future__ import annotations

from typing import Any

from rfq_engine.store.projection import Dirty, Tables, Touched
from rfq_engine.store.rowcache import RowCache


def written(n: int, quotes_per_rfq: int) -> tuple[Tables, Dirty]:
    tables, dirty = Tables(), Dirty()
    rid = f"rfq-{n}"
    tables.rfqs[rid] = {"rfq": n}  # type: ignore[assignment]
    dirty.rfqs.add(rid)
    for q in range(quotes_per_rfq):
        key: Any = (rid, f"q{q}")
        tables.quotes[key] = {"quote": (n, q)}
        dirty.quotes.add(key)
    tables.awards[f"x-{n}"] = {"award": n}  # type: ignore[assignment]
    tables.fills[f"f-{n}"] = {"fill": n}  # type: ignore[assignment]
    dirty.awards.add(f"x-{n}")
    dirty.fills.add(f"f-{n}")
    return tables, dirty


def test_each_table_stays_within_its_bound_and_keeps_the_newest_rows() -> None:
    cache = RowCache(rows=100, quotes=400)
    for n in range(5_000):
        cache.remember(*written(n, quotes_per_rfq=5))
    want = Touched(rfq_ids={f"rfq-{n}" for n in range(5_000)},
                   quote_keys={(f"rfq-{n}", f"q{q}") for n in range(5_000) for q in range(5)},
                   execution_ids={f"x-{n}" for n in range(5_000)},
                   fill_ids={f"f-{n}" for n in range(5_000)})
    rows, missing = cache.split(want)
    assert all(90 <= len(table) <= 100 for table in (rows.rfqs, rows.awards, rows.fills))
    assert 360 <= len(rows.quotes) <= 400
    newest = range(5_000 - 90, 5_000)
    assert all(f"rfq-{n}" in rows.rfqs and f"x-{n}" in rows.awards for n in newest)
    assert all((f"rfq-{n}", "q4") in rows.quotes for n in range(5_000 - 72, 5_000))
    assert len(rows.rfqs) + len(missing.rfq_ids) == 5_000  # the rest is read from the database
    assert rows.rfqs["rfq-4999"] == {"rfq": 4999}


def test_a_row_written_again_is_kept_as_the_newest() -> None:
    cache = RowCache(rows=10, quotes=10)
    cache.remember(*written(0, quotes_per_rfq=0))
    for n in range(1, 30):
        cache.remember(*written(n, quotes_per_rfq=0))
        cache.remember(*written(0, quotes_per_rfq=0))  # RFQ 0 changes with every batch
    rows, _ = cache.split(Touched(rfq_ids={"rfq-0", "rfq-1"}))
    assert "rfq-0" in rows.rfqs and "rfq-1" not in rows.rfqs


def test_clear_forgets_every_row() -> None:
    cache = RowCache()
    cache.remember(*written(1, quotes_per_rfq=2))
    cache.clear()
    rows, missing = cache.split(Touched(rfq_ids={"rfq-1"}, fill_ids={"f-1"}))
    assert not rows.rfqs and not rows.fills and missing.rfq_ids == {"rfq-1"}
