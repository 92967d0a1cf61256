"""Direct SQL on an audit database, bypassing the store: the attacker's (or the accident's) view."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg

from rfq_engine.domain import format_ts, parse_ts

COLUMNS = ("seq", "ts", "rfq_id", "type", "actor", "payload", "prev_hash", "hash")


class SqlTamper:
    """Edits audit_events of a SQLite file or a PostgreSQL database. Timestamps are given and
    returned as ``...Z`` text on both."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind  # "sqlite" (target: file path) or "postgres" (target: asyncpg DSN)
        self.target = target

    async def execute(self, sql: str, *args: Any) -> None:
        """Raw SQL; placeholders are ? on SQLite and $n on PostgreSQL."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.target)
            try:
                conn.executescript(sql) if not args else conn.execute(sql, args)
                conn.commit()
            finally:
                conn.close()
        else:
            pg = await asyncpg.connect(self.target)
            try:
                await pg.execute(sql, *args)
            finally:
                await pg.close()

    async def rows(self) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.target)
            try:
                return conn.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM audit_events ORDER BY seq"
                ).fetchall()
            finally:
                conn.close()
        pg = await asyncpg.connect(self.target)
        try:
            records = await pg.fetch(
                f"SELECT {', '.join(COLUMNS)} FROM audit_events ORDER BY seq"
            )
        finally:
            await pg.close()
        return [(r[0], format_ts(r[1]), *tuple(r)[2:]) for r in records]

    def _value(self, column: str, value: Any) -> Any:
        if column == "ts" and self.kind == "postgres":
            return parse_ts(value, "ts")
        return value

    def _mark(self, n: int) -> str:
        return "?" if self.kind == "sqlite" else f"${n}"

    async def update(self, at_seq: int, /, **values: Any) -> None:
        sets = ", ".join(f"{c} = {self._mark(i + 1)}" for i, c in enumerate(values))
        args = [self._value(c, v) for c, v in values.items()]
        await self.execute(
            f"UPDATE audit_events SET {sets} WHERE seq = {self._mark(len(values) + 1)}", *args,
            at_seq,
        )

    async def delete(self, *seqs: int) -> None:
        for seq in seqs:
            await self.execute(f"DELETE FROM audit_events WHERE seq = {self._mark(1)}", seq)

    async def insert(self, row: tuple[Any, ...]) -> None:
        marks = ", ".join(self._mark(i + 1) for i in range(len(COLUMNS)))
        args = [self._value(c, v) for c, v in zip(COLUMNS, row, strict=True)]
        await self.execute(f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({marks})", *args)

    async def shift_up(self, from_seq: int) -> None:
        """seq += 1 for every row from ``from_seq`` on (newest first: no primary-key clash)."""
        for row in reversed(await self.rows()):
            if row[0] >= from_seq:
                await self.update(row[0], seq=row[0] + 1)
