"""SQL schema of the audit store (SQLAlchemy Core) and row <-> dataclass conversion.

Why Core tables on a private ``MetaData`` rather than SQLModel ``table=True`` classes: the
hot paths (group-commit executemany, verify) work on raw tuples and dicts, never on ORM
objects, and a private metadata keeps ``create_all`` from creating tables that other
packages register on the shared ``SQLModel.metadata``.

Value types, the same on SQLite and PostgreSQL from Python's point of view:

- decimals are TEXT in plain notation (``decimal_str``): exact; SQLite has no exact
  numeric type and would silently turn NUMERIC into a float. Sums happen in Python.
- timestamps are the ``...Z`` ISO text with microseconds on SQLite (fixed width, so text
  order is time order) and ``timestamptz`` on PostgreSQL.
- ``audit_events.seq`` is BIGINT (INTEGER on SQLite, so it is the rowid) and never
  autoincrement: the writer assigns it.
- key columns use the "C" collation on PostgreSQL so ORDER BY matches Python and SQLite.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from rfq_engine.domain import decimal_str, parse_ts, to_jsonable
from rfq_engine.store.base import AwardRow, FillRow, QuoteRow, RfqRow
from rfq_engine.store.chain import ts_text
from rfq_engine.store.events import AuditEvent

__all__ = [
    "EVENT_ATTRS",
    "PROJECTION",
    "SUPERSEDED_INDEXES",
    "Bulk",
    "audit_events",
    "awards",
    "fills",
    "metadata",
    "projection_state",
    "quotes",
    "rfqs",
    "row_to_award",
    "row_to_event",
    "row_to_fill",
    "row_to_quote",
    "row_to_rfq",
    "upgrade_indexes",
]


class UtcTimestamp(TypeDecorator[datetime]):
    """Aware UTC datetime: ``...Z`` text on SQLite, timestamptz on PostgreSQL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(TIMESTAMP(timezone=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value if dialect.name == "postgresql" else ts_text(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return parse_ts(value, "ts")


class DecimalText(TypeDecorator[Decimal]):
    """Exact decimal stored as plain-notation text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else decimal_str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def _key() -> TypeEngine[str]:
    return Text().with_variant(Text(collation="C"), "postgresql")


metadata = MetaData()

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=False),
    Column("ts", UtcTimestamp(), nullable=False),
    Column("rfq_id", _key(), nullable=True),
    Column("type", Text(), nullable=False),
    Column("actor", Text(), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("prev_hash", Text(), nullable=False),
    Column("hash", Text(), nullable=False),
    Index("ix_audit_events_rfq_id", "rfq_id"),
    Index("ix_audit_events_type", "type"),
    Index("ix_audit_events_ts", "ts"),
)

rfqs = Table(
    "rfqs",
    metadata,
    Column("rfq_id", _key(), primary_key=True),
    Column("client_rfq_id", Text(), nullable=True),
    Column("requester", Text(), nullable=False),
    Column("mandate", Text(), nullable=False),
    Column("direction", Text(), nullable=False),
    Column("quantity", DecimalText(), nullable=False),
    Column("quantity_unit", Text(), nullable=False),
    Column("state", Text(), nullable=False),
    Column("notional", DecimalText(), nullable=False),
    Column("filled_quantity", DecimalText(), nullable=False),
    Column("created_at", UtcTimestamp(), nullable=False),
    Column("updated_at", UtcTimestamp(), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("spec", Text(), nullable=False),
    Index("ix_rfqs_requester_client", "requester", "client_rfq_id"),
    # Newest first, keyset-paginated (sql_reads.rfq_where): each filter of RfqQuery has an
    # index ending in the order's (created_at, rfq_id), so a filtered page is one range.
    Index("ix_rfqs_created", "created_at", "rfq_id"),
    Index("ix_rfqs_state_created", "state", "created_at", "rfq_id"),
    Index("ix_rfqs_requester_created", "requester", "created_at", "rfq_id"),
    Index("ix_rfqs_mandate_created", "mandate", "created_at", "rfq_id"),
)

# Indexes of earlier schemas that one above replaces (dropped by ``upgrade_indexes``).
SUPERSEDED_INDEXES: Final = ("ix_rfqs_state", "ix_rfqs_created_at")

quotes = Table(
    "quotes",
    metadata,
    Column("rfq_id", _key(), primary_key=True),
    Column("dealer_id", _key(), primary_key=True),
    Column("quote_id", _key(), primary_key=True),
    Column("bid", DecimalText(), nullable=True),
    Column("ask", DecimalText(), nullable=True),
    Column("quantity", DecimalText(), nullable=True),
    Column("valid_until", UtcTimestamp(), nullable=True),
    Column("received_at", UtcTimestamp(), nullable=False),
    Column("status", Text(), nullable=False),
    Column("rank", Integer(), nullable=True),
    Column("reason", Text(), nullable=False),
)

awards = Table(
    "awards",
    metadata,
    Column("execution_id", _key(), primary_key=True),
    Column("rfq_id", _key(), nullable=False),
    Column("dealer_id", _key(), nullable=False),
    Column("quote_id", _key(), nullable=False),
    Column("side", Text(), nullable=False),
    Column("price", DecimalText(), nullable=False),
    Column("quantity", DecimalText(), nullable=False),
    Column("confirm_by", UtcTimestamp(), nullable=False),
    Column("status", Text(), nullable=False),
    Column("reason", Text(), nullable=False),
    Index("ix_awards_rfq_id", "rfq_id"),
)

fills = Table(
    "fills",
    metadata,
    Column("fill_id", _key(), primary_key=True),
    Column("execution_id", _key(), nullable=False),
    Column("rfq_id", _key(), nullable=False),
    Column("dealer_id", _key(), nullable=False),
    Column("mandate", Text(), nullable=False),
    Column("price", DecimalText(), nullable=False),
    Column("quantity", DecimalText(), nullable=False),
    Column("notional", DecimalText(), nullable=False),
    Column("dealer_trade_id", Text(), nullable=False),
    Column("filled_at", UtcTimestamp(), nullable=False),
    Column("last_date", Date(), nullable=True),
    Index("ix_fills_rfq_id", "rfq_id"),
    Index("ix_fills_dealer_id", "dealer_id"),
    Index("ix_fills_mandate", "mandate"),
    Index("ix_fills_filled_at", "filled_at"),
)

# How far the query tables above are applied, where they are committed after the events
# (the SQLite writer: see sqlite_commit.py). One row per projection; no row means the
# tables are committed with the events (PostgreSQL). The writer replays what is missing.
PROJECTION: Final = "tables"  # the query tables' row in projection_state
projection_state = Table(
    "projection_state",
    metadata,
    Column("name", Text(), primary_key=True),
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
)


def upgrade_indexes(conn: Connection) -> None:
    """Give a database made by an earlier version the indexes of this schema (``create_all``
    makes the indexes of the tables it creates, not those added to a table since) and drop
    the ones they replace. The writer runs it at open, after ``create_all``."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    for name in SUPERSEDED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


# --- conversion --------------------------------------------------------------------------

EVENT_ATTRS = {"payload": "payload_json"}  # audit_events column -> AuditEvent attribute


def _spec_default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


# canonical_json's output with the encoder built once and no to_jsonable pre-pass (a fifth
# of the SQLite commit thread at 1000-event batches). The pre-pass is only there to refuse
# floats, and a spec has none: it is the writer's parse of the payload (floats refused)
# or the json.loads of a spec this module wrote.
_spec_json = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_spec_default
).encode


def _encode_spec(value: Mapping[str, Any]) -> str:
    return _spec_json(value if type(value) is dict else dict(value))


def _encode_date(value: date) -> str:
    return value.isoformat()


def column_encoder(column: Column[Any], dialect_name: str) -> Callable[[Any], Any] | None:
    """What the column's bind processing would do, as one plain function (None: identity)."""
    if isinstance(column.type, DecimalText):
        return decimal_str
    if column.name == "spec":
        return _encode_spec
    if dialect_name == "postgresql":
        return None  # asyncpg takes datetime and date objects as they are
    if isinstance(column.type, UtcTimestamp):
        return ts_text
    if isinstance(column.type, Date):
        return _encode_date
    return None


@dataclass(frozen=True, slots=True)
class Bulk:
    """A statement compiled once for a dialect, run as a DBAPI executemany of tuples.

    The group commit's hot path: ``exec_driver_sql`` skips SQLAlchemy's per-row parameter
    processing, which was a third of the commit's CPU at 1000-event batches. The values
    are read with one ``attrgetter`` and only the columns that need it are encoded, to
    exactly what the TypeDecorators above produce.
    """

    sql: str
    getter: Callable[[Any], tuple[Any, ...]]
    encoders: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def compile(
        cls, stmt: ClauseElement, table: Table, dialect: Dialect,
        attrs: Mapping[str, str] | None = None,
    ) -> Bulk:
        """``attrs`` maps a column to the attribute holding it when the names differ."""
        compiled = stmt.compile(dialect=dialect)
        columns = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
        if len(columns) < 2:
            raise ValueError("Bulk needs a positional statement of two or more columns")
        names = [(attrs or {}).get(c, c) for c in columns]
        encoders = tuple(
            (i, enc) for i, c in enumerate(columns)
            if (enc := column_encoder(table.c[c], dialect.name)) is not None
        )
        return cls(compiled.string, operator.attrgetter(*names), encoders)

    def params(self, items: Iterable[Any]) -> list[tuple[Any, ...]]:
        get, encoders = self.getter, self.encoders
        out: list[tuple[Any, ...]] = []
        for item in items:
            values = list(get(item))
            for i, encode in encoders:
                value = values[i]
                if value is not None:
                    values[i] = encode(value)
            out.append(tuple(values))
        return out


def row_to_event(row: Row[Any]) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        m["seq"], m["ts"], m["rfq_id"], m["type"], m["actor"], m["payload"], m["prev_hash"],
        m["hash"],
    )


def row_to_rfq(row: Row[Any]) -> RfqRow:
    m = dict(row._mapping)
    m["spec"] = json.loads(m["spec"])
    return RfqRow(**m)


def row_to_quote(row: Row[Any]) -> QuoteRow:
    return QuoteRow(**row._mapping)


def row_to_award(row: Row[Any]) -> AwardRow:
    return AwardRow(**row._mapping)


def row_to_fill(row: Row[Any]) -> FillRow:
    return FillRow(**row._mapping)
