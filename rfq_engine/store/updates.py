"""UPDATE only what changed, for projection rows the SQLite writer knows exist.

Why. Most projection writes change two or three columns of a row that already exists:
a quote's status and rank when it is ranked, an rfq's state, updated_at and reason, an
award's status. Rewriting the whole row (an upsert of every column) costs the encoding of
every value (the rfq's ``spec`` JSON, timestamps, decimals), binds every parameter, and
makes SQLite rewrite the entry of every index on the table, since an upsert names every
column. ``ColumnUpdates`` compares the row before and after the batch's changes and writes
``UPDATE t SET <changed columns> WHERE <primary key>``, grouped by the set of changed
columns so each group is one ``executemany``.

"Before" must be the row as stored: the writer's row cache (rows it committed) or a row it
read in the same transaction. ``execute`` returns the number of rows SQLite updated, so
the caller can tell when a row it believed present is not (then it rereads everything).

Two values are the same when they are the same object, or of the same type and equal and
not containers: equal decimals and equal UTC timestamps are stored as the same text
(``decimal_str`` normalises, ``ts_text`` renders the instant), while a dict or list (the
rfq's ``spec``) is compared by identity only, because ``1 == True`` would hide a change
of its canonical JSON.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Iterable
from itertools import compress
from operator import is_not
from typing import Any, Final

from sqlalchemy import Table

from rfq_engine.store.tables import column_encoder

__all__ = ["ColumnUpdates"]

_CONTAINERS: Final = (dict, list, tuple, set)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b) or kind in _CONTAINERS:
        return False
    return bool(a == b)


class ColumnUpdates:
    """The changed-columns UPDATEs of one table (SQLite, ``?`` parameters)."""

    __slots__ = (
        "_encoders", "_get", "_get_key", "_key_names", "_names", "_positions", "_sql", "_table",
    )

    def __init__(self, table: Table) -> None:
        key = [c.name for c in table.primary_key.columns]
        self._table = table.name
        self._names = tuple(c.name for c in table.columns if c.name not in key)
        self._key_names = tuple(key)
        self._get: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*self._names)
        getter = operator.attrgetter(*key)
        self._get_key: Callable[[Any], tuple[Any, ...]] = (
            getter if len(key) > 1 else (lambda row: (getter(row),))
        )
        self._encoders: dict[int, Callable[[Any], Any]] = {
            i: enc for i, name in enumerate(self._names)
            if (enc := column_encoder(table.c[name], "sqlite")) is not None
        }
        if any(column_encoder(table.c[name], "sqlite") for name in key):
            raise ValueError(f"{table.name}: primary key columns must be stored as they are")
        self._sql: dict[tuple[int, ...], str] = {}
        self._positions = range(len(self._names))

    def group(self, pairs: Iterable[tuple[Any, Any]]) -> dict[tuple[int, ...], list[tuple[Any, ...]]]:
        """(before, after) row pairs -> {changed column indexes: UPDATE parameters}; rows
        with nothing changed are left out."""
        get, encoders = self._get, self._encoders
        groups: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
        positions = self._positions
        for before, after in pairs:
            old, new = get(before), get(after)
            # The columns holding another object (C-level scan), then the equal ones dropped.
            changed = tuple(
                i for i in compress(positions, map(is_not, old, new)) if not _same(old[i], new[i])
            )
            if not changed:
                continue
            values: list[Any] = []
            for i in changed:
                value = new[i]
                encode = encoders.get(i)
                values.append(value if encode is None or value is None else encode(value))
            values += self._get_key(after)
            groups.setdefault(changed, []).append(tuple(values))
        return groups

    def sql(self, changed: tuple[int, ...]) -> str:
        text = self._sql.get(changed)
        if text is None:
            sets = ", ".join(f"{self._names[i]} = ?" for i in changed)
            where = " AND ".join(f"{name} = ?" for name in self._key_names)
            text = self._sql[changed] = f"UPDATE {self._table} SET {sets} WHERE {where}"
        return text

    def execute(self, conn: sqlite3.Connection, pairs: Iterable[tuple[Any, Any]]) -> tuple[int, int]:
        """Run the UPDATEs: (rows meant to change, rows SQLite updated)."""
        meant = updated = 0
        for changed, params in self.group(pairs).items():
            meant += len(params)
            updated += conn.executemany(self.sql(changed), params).rowcount
        return meant, updated
