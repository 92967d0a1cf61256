"""The execution journal of every dealer kind that executes: intent before the call, outcome after.

Why it exists: one award must be at most one execution at the dealer, across timeouts,
retries, reconnects and restarts. The kinds that execute (REST desks, ccxt venues, and the
simulated desks' own books) keep that promise the same way, here, modelled on hummingbot's
in-flight order tracker:

- **Under our key.** Everything is keyed by ``(dealer id, execution id)``: the award's
  execution id is the idempotency key (or the seed of the venue's key).
- **Intent first.** ``record_intent`` makes the intent durable (JSONL line, fsynced)
  before the network call; a failed write raises, and then nothing may be sent. An
  execution id gets one intent, ever: a second one, or one for a fenced id, is refused.
- **Outcome after.** ``record_outcome`` records the dealer's final answer; the first one
  stands, later ones (a lookup that finds the same fill again) are deduplicated by trade
  id and write nothing.
- **Fence.** ``fence`` records that a lookup was answered "not found" for an id that has
  no intent: from then on an award with it must be refused, never placed, so the answer
  stays true.

Phases (``Phase``) of one execution::

    NEW --begin--> PENDING --intent durable--> INTENDED --mark_sent--> SENT
                     |                            \\                   |  mark_unknown
                     |                             \\                  v
                     |                              +------------> UNKNOWN
                     |                                               |
                     +--(an answer with no call: a refusal, a desk's booking)
                                                                     v
                                                        CONFIRMED | REJECTED
    NEW --fence--> FENCED

Durable: intent, outcome and (where the kind keeps them) fence lines. PENDING, SENT and
UNKNOWN are what this process knows in memory: after a restart an intent without an
outcome reads INTENDED (the call may or may not have been made: look it up, never send it
again). ``restore`` rebuilds everything from the file.

The file: ``dealer_adapters.jsonlog`` (fsynced JSON lines, a torn last line cut), one
process writing it at a time; any other bad line is an error naming the file and line.
Each kind keeps its own line format (a subclass: ``decode``/``encode``), so journals
written before this module existed read unchanged; a desk whose file holds only its own
``{"type": "intent" | "outcome", ...}`` records (REST, FIX) is a ``DeskJournal``: lines
read by ``typed_line``, outcomes a ``DeskOutcome``.
``append`` blocks; the ``record_*`` methods and ``fence`` run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import structlog

from dealer_adapters.jsonlog import JsonLog, dumps_line
from rfq_engine.domain import ExecutionId, decimal_str, format_ts, parse_decimal, parse_ts, utc_now
from rfq_engine.domain.errors import StoreFault

__all__ = ["DeskJournal", "DeskOutcome", "Execution", "ExecutionJournal", "Fence", "JournalError", "Line",
           "Phase", "typed_line"]

_log = structlog.get_logger(__name__)

I = TypeVar("I")  # noqa: E741 - the kind's intent record
O = TypeVar("O")  # noqa: E741 - the kind's outcome record

_Key = tuple[str, ExecutionId]


class JournalError(StoreFault):
    """The journal file cannot be read (a corrupt line, an unknown version)."""


class Phase(StrEnum):
    NEW = "new"
    """Nothing recorded for the id (yet)."""
    PENDING = "pending"
    """An attempt started: its intent (or a desk's booking) is being written; nothing sent."""
    INTENDED = "intended"
    """The intent is durable; the call may have been made (all a restart can know)."""
    SENT = "sent"
    """This process made the call and has no answer yet."""
    UNKNOWN = "unknown"
    """The call's fate is unknown (timeout, lost reply, not shown by the venue): look it up."""
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    FENCED = "fenced"
    """Answered "not found" with no intent: an award with this id is refused, never placed."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A fence line: ``execution_id`` was answered "not found" and must never be placed."""

    dealer_id: str
    execution_id: ExecutionId
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Line(Generic[I, O]):
    """One decoded journal line: an intent, an outcome, a fence, or a note (kept as read)."""

    dealer_id: str
    execution_id: ExecutionId
    intent: I | None = None
    outcome: O | None = None
    fence: bool = False
    note: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeskOutcome:
    """A desk's final answer to an award, its journal's ``outcome`` line: filled (price in the
    desk's orientation) or rejected. A kind's subclass adds the field of the desk's trade id,
    named by ``TRADE_FIELD`` (the line's key too)."""

    execution_id: ExecutionId
    filled: bool
    recorded_at: datetime
    price: Decimal | None = None
    quantity: Decimal | None = None
    reason: str = ""
    TRADE_FIELD: ClassVar[str]

    @property
    def desk_trade_id(self) -> str:
        """The desk's trade id of a fill (its ``TRADE_FIELD``; "" when it has none)."""
        return str(getattr(self, self.TRADE_FIELD))

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1, "type": "outcome", "execution_id": self.execution_id,
            "status": "filled" if self.filled else "rejected",
            "price": None if self.price is None else decimal_str(self.price),
            "quantity": None if self.quantity is None else decimal_str(self.quantity),
            self.TRADE_FIELD: self.desk_trade_id, "reason": self.reason,
            "recorded_at": format_ts(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        status = data["status"]
        if status not in ("filled", "rejected"):
            raise ValueError(f"unknown outcome status {status!r}")
        price, quantity = data.get("price"), data.get("quantity")
        return cls(
            execution_id=ExecutionId(str(data["execution_id"])), filled=status == "filled",
            recorded_at=parse_ts(data["recorded_at"], "recorded_at"),
            price=None if price is None else parse_decimal(price, "price"),
            quantity=None if quantity is None else parse_decimal(quantity, "quantity"),
            reason=str(data.get("reason", "")), **{cls.TRADE_FIELD: str(data.get(cls.TRADE_FIELD, ""))},
        )


class _Keyed(Protocol):
    @property
    def execution_id(self) -> ExecutionId: ...


TI = TypeVar("TI", bound=_Keyed)
TO = TypeVar("TO", bound=_Keyed)


def typed_line(dealer_id: str, data: dict[str, Any], intent: Callable[[dict[str, Any]], TI],
               outcome: Callable[[dict[str, Any]], TO]) -> Line[TI, TO]:
    """One line of a desk's own file, ``{"type": "intent" | "outcome", ...}``, read by the
    kind's ``intent`` or ``outcome`` reader (the lines name no dealer: ``dealer_id`` does).
    ``ValueError`` for another type."""
    if data.get("type") == "intent":
        read = intent(data)
        return Line(dealer_id, read.execution_id, intent=read)
    if data.get("type") == "outcome":
        done = outcome(data)
        return Line(dealer_id, done.execution_id, outcome=done)
    raise ValueError(f"unknown record type {data.get('type')!r}")


@dataclass(slots=True, eq=False)
class Execution(Generic[I, O]):
    """What the journal knows about one execution id of one dealer."""

    dealer_id: str
    execution_id: ExecutionId
    phase: Phase = Phase.NEW
    intent: I | None = None
    outcome: O | None = None
    fenced: bool = False
    reason: str = ""
    """Why the phase is UNKNOWN (the last thing that left it unknown)."""
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Lines of other kinds for this id, as read (a newer writer's; kept, not interpreted)."""
    settling: O | None = None
    """An outcome being written that becomes ``outcome`` once durable (a desk's booking)."""

    @property
    def unresolved(self) -> bool:
        """An intent without an outcome: the order may be at the dealer; look it up, never resend."""
        return self.intent is not None and self.outcome is None

    @property
    def pending(self) -> bool:
        return self.phase is Phase.PENDING


class ExecutionJournal(ABC, Generic[I, O]):
    """One journal file (``path``; None keeps it in memory only) and what it knows.

    Several dealers may share a file: every method names the dealer. A subclass says how
    its records are lines (``decode``, ``encode``) and how to read an outcome
    (``confirmed``, ``trade_id``).
    """

    VERSION: ClassVar[int] = 1
    NOUN: ClassVar[str] = "journal"
    """Names a bad line in errors ("bad journal line", "bad ledger line")."""
    ERROR: ClassVar[type[JournalError]] = JournalError
    DURABLE_FENCES: ClassVar[bool] = True
    """Whether fences are lines (and so survive a restart) or live as long as the process."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._log = None if path is None else JsonLog(path)
        self._entries: dict[_Key, Execution[I, O]] = {}
        self._trades: dict[tuple[str, str], ExecutionId] = {}

    # --- the line format (one per kind) --------------------------------------------------

    @abstractmethod
    def decode(self, data: dict[str, Any]) -> Line[I, O]:
        """One line (a JSON object of this journal's version) as a ``Line``; raises
        ``ValueError``/``KeyError``/``TypeError`` when it is not one."""

    @abstractmethod
    def encode(self, record: I | O | Fence) -> dict[str, Any]:
        """The JSON object of one line (``v`` is added when missing)."""

    @abstractmethod
    def confirmed(self, outcome: O) -> bool:
        """True when ``outcome`` is a fill, False for a reject."""

    @abstractmethod
    def trade_id(self, outcome: O) -> str:
        """The dealer's trade id of a fill ("" when it has none)."""

    # --- the file ------------------------------------------------------------------------

    def append(self, record: I | O | Fence) -> None:
        """Write one line and fsync it; returns once it is durable. Blocks."""
        if self._log is not None:
            self._log.append(dumps_line({"v": self.VERSION, **self.encode(record)}))

    def read(self) -> list[Line[I, O]]:
        """Every line of the file in order (nothing for a missing file or no path)."""
        if self._log is None:
            return []
        lines: list[Line[I, O]] = []
        for number, text in self._log.lines():
            try:
                data = json.loads(text)
                if not isinstance(data, dict) or data.get("v") != self.VERSION:
                    raise ValueError(f"not a version {self.VERSION} {self.NOUN} record")
                lines.append(self.decode(data))
            except (ValueError, KeyError, TypeError) as exc:
                raise self.ERROR(f"{self.path}:{number}: bad {self.NOUN} line: {exc}") from exc
        return lines

    def restore(self) -> Mapping[_Key, Execution[I, O]]:
        """Rebuild what the journal knows from its file (what it held in memory is dropped).

        A later line of the same kind for an id replaces an earlier one (files written
        before outcomes were deduplicated may hold two of the same fill).
        """
        self._entries.clear()
        self._trades.clear()
        for line in self.read():
            entry = self._entry(line.dealer_id, line.execution_id)
            if line.intent is not None:
                entry.intent = line.intent
            if line.outcome is not None:
                entry.outcome = line.outcome
                self._index(entry, line.outcome)
            entry.fenced = entry.fenced or line.fence
            if line.note is not None:
                entry.notes.append(line.note)
        for entry in self._entries.values():
            entry.phase = self._resting_phase(entry)
        return MappingProxyType(self._entries)

    # --- what it knows -------------------------------------------------------------------

    def get(self, dealer_id: str, execution_id: str) -> Execution[I, O] | None:
        return self._entries.get((dealer_id, ExecutionId(execution_id)))

    def executions(self, dealer_id: str) -> list[Execution[I, O]]:
        """Every execution of ``dealer_id`` the journal knows, in the order first seen."""
        return [entry for (did, _), entry in self._entries.items() if did == dealer_id]

    def by_trade_id(self, dealer_id: str, trade_id: str) -> Execution[I, O] | None:
        """The execution whose recorded fill carries ``trade_id``."""
        eid = self._trades.get((dealer_id, trade_id))
        return None if eid is None else self.get(dealer_id, eid)

    # --- transitions ---------------------------------------------------------------------

    def begin(self, dealer_id: str, execution_id: str) -> Execution[I, O]:
        """PENDING: an attempt for a NEW id starts (nothing durable yet). ``ValueError`` if
        the id already has an intent, an outcome, a fence or an attempt."""
        entry = self._entry(dealer_id, ExecutionId(execution_id))
        if entry.phase is not Phase.NEW:
            raise ValueError(f"execution {execution_id} of {dealer_id} is already {entry.phase.value}")
        entry.phase = Phase.PENDING
        return entry

    def abandon(self, dealer_id: str, execution_id: str) -> None:
        """A PENDING attempt ended with nothing recorded: the id is NEW again."""
        entry = self.get(dealer_id, execution_id)
        if entry is not None and entry.phase is Phase.PENDING:
            self._forget(entry)

    async def record_intent(self, dealer_id: str, execution_id: str, intent: I) -> Execution[I, O]:
        """Make ``intent`` durable before the call it announces: INTENDED once on disk.

        Raises ``OSError`` (or ``CancelledError``) when the write fails: the id is NEW
        again and the call must not be made. ``ValueError`` when the id already has an
        intent, an outcome or a fence: a second call for it would be a second execution.
        """
        entry = self._entry(dealer_id, ExecutionId(execution_id))
        if entry.phase not in (Phase.NEW, Phase.PENDING):
            raise ValueError(f"execution {execution_id} of {dealer_id} is {entry.phase.value}: "
                             "no second intent")
        entry.phase = Phase.PENDING
        try:
            await self._write(intent)
        except BaseException:
            self._forget(entry)
            raise
        entry.intent = intent
        entry.phase = Phase.INTENDED
        return entry

    def mark_sent(self, dealer_id: str, execution_id: str) -> None:
        """SENT: the call announced by the intent is being made now."""
        entry = self.get(dealer_id, execution_id)
        if entry is not None and entry.phase in (Phase.INTENDED, Phase.UNKNOWN):
            entry.phase = Phase.SENT

    def mark_unknown(self, dealer_id: str, execution_id: str, reason: str) -> None:
        """UNKNOWN: the call's fate is not known (timeout, lost reply, not shown yet)."""
        entry = self.get(dealer_id, execution_id)
        if entry is not None and entry.intent is not None and entry.outcome is None:
            entry.phase, entry.reason = Phase.UNKNOWN, reason

    async def record_outcome(self, dealer_id: str, execution_id: str, outcome: O, *,
                             booking: bool = False) -> O:
        """Record the final answer; returns the answer that stands.

        Deduplicated by trade id: the same fill (or a reject) reported again writes
        nothing and the first record stands. A fill after a recorded reject replaces it
        (a fill is a trade: it must be known; logged as an alert), while a reject after a
        fill, or a second fill with another trade id, is ignored and logged as a conflict.

        ``booking=False`` (an answer we learned from the dealer): it stands at once, then
        is written; a failed write is logged and the answer still stands (the dealer is
        the truth). ``booking=True`` (the dealer's own booking: the simulated desk's
        book): it exists only once durable; until then the id is PENDING, and a failed
        write raises ``OSError`` with nothing booked.
        """
        key = (dealer_id, ExecutionId(execution_id))
        entry = self._entry(*key)
        if entry.settling is not None:
            return entry.settling
        if entry.outcome is not None and not self._replaces(entry, entry.outcome, outcome):
            return entry.outcome
        if not booking:
            self._settle(entry, outcome)
            try:
                await self._write(outcome)
            except OSError as exc:
                _log.warning("journal_outcome_not_written", dealer_id=dealer_id, execution_id=execution_id,
                             path=str(self.path), error=str(exc))
            return outcome
        if entry.phase is Phase.NEW:
            entry.phase = Phase.PENDING
        entry.settling = outcome
        try:
            await self._write(outcome)
        except BaseException:
            entry.settling = None
            if entry.intent is None:
                self._forget(entry)
            raise
        entry.settling = None
        self._settle(entry, outcome)
        return outcome

    async def fence(self, dealer_id: str, execution_id: str, reason: str) -> bool:
        """FENCED: ``execution_id`` was answered "not found" and must never be placed.

        The fence holds at once (an award arriving during the write is refused), and is
        written first where this journal keeps fences. Returns False, and the id is not
        fenced, when that write fails or the id is not NEW (it has an intent, an outcome
        or an attempt in progress: "not found" would not be true).
        """
        entry = self._entry(dealer_id, ExecutionId(execution_id))
        if entry.fenced:
            return True
        if entry.phase is not Phase.NEW:
            _log.error("journal_fence_refused", dealer_id=dealer_id, execution_id=execution_id,
                       phase=entry.phase.value)
            return False
        entry.fenced, entry.phase = True, Phase.FENCED
        if self.DURABLE_FENCES:
            try:
                await self._write(Fence(dealer_id, ExecutionId(execution_id), reason, utc_now()))
            except OSError as exc:
                _log.warning("journal_fence_not_written", dealer_id=dealer_id, execution_id=execution_id,
                             path=str(self.path), error=str(exc))
                entry.fenced = False
                self._forget(entry)
                return False
        return True

    # --- internals -----------------------------------------------------------------------

    def _entry(self, dealer_id: str, execution_id: ExecutionId) -> Execution[I, O]:
        key = (dealer_id, execution_id)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Execution(dealer_id, execution_id)
        return entry

    def _forget(self, entry: Execution[I, O]) -> None:
        """Back to what the file says (NEW, or the resting phase of what it holds)."""
        entry.phase = self._resting_phase(entry)
        if entry.phase is Phase.NEW and not entry.notes:
            self._entries.pop((entry.dealer_id, entry.execution_id), None)

    def _resting_phase(self, entry: Execution[I, O]) -> Phase:
        if entry.outcome is not None:
            return Phase.CONFIRMED if self.confirmed(entry.outcome) else Phase.REJECTED
        if entry.intent is not None:
            return Phase.INTENDED
        return Phase.FENCED if entry.fenced else Phase.NEW

    def _settle(self, entry: Execution[I, O], outcome: O) -> None:
        entry.outcome = outcome
        entry.phase = Phase.CONFIRMED if self.confirmed(outcome) else Phase.REJECTED
        entry.reason = ""
        self._index(entry, outcome)

    def _index(self, entry: Execution[I, O], outcome: O) -> None:
        trade = self.trade_id(outcome) if self.confirmed(outcome) else ""
        if not trade:
            return
        other = self._trades.setdefault((entry.dealer_id, trade), entry.execution_id)
        if other != entry.execution_id:
            _log.error("journal_trade_id_reused", dealer_id=entry.dealer_id, trade_id=trade,
                       execution_id=entry.execution_id, first_execution_id=other, alert=True)

    def _replaces(self, entry: Execution[I, O], standing: O, again: O) -> bool:
        """Whether ``again`` replaces the recorded ``standing`` outcome (only a fill over a reject)."""
        filled, filled_again = self.confirmed(standing), self.confirmed(again)
        if filled_again and not filled:
            _log.error("journal_fill_after_reject", dealer_id=entry.dealer_id,
                       execution_id=entry.execution_id, trade_id=self.trade_id(again), alert=True)
            return True
        if filled == filled_again and (not filled or self.trade_id(standing) == self.trade_id(again)):
            _log.debug("journal_duplicate_outcome", dealer_id=entry.dealer_id,
                       execution_id=entry.execution_id, trade_id=self.trade_id(again))
            return False
        _log.error("journal_outcome_conflict", dealer_id=entry.dealer_id, execution_id=entry.execution_id,
                   standing=self.trade_id(standing) or "rejected", ignored=self.trade_id(again) or "rejected",
                   alert=True)
        return False

    async def _write(self, record: I | O | Fence) -> None:
        if self._log is not None:
            await asyncio.to_thread(self.append, record)


class _DeskRecord(Protocol):
    @property
    def execution_id(self) -> ExecutionId: ...

    def to_dict(self) -> dict[str, Any]: ...


DI = TypeVar("DI", bound=_DeskRecord)
DO = TypeVar("DO", bound=DeskOutcome)


class DeskJournal(ExecutionJournal[DI, DO]):
    """The journal file of one desk (REST, FIX): its own typed lines (``typed_line``), which
    name no dealer (``dealer_id`` names the desk in what the journal knows), and no fence
    lines: fences live as long as the adapter. A kind's subclass reads its lines (``decode``)."""

    DURABLE_FENCES = False
    DESK: ClassVar[str] = "a desk"
    """Names the kind in the error refusing a fence line ("a FIX desk")."""

    def __init__(self, path: Path, dealer_id: str = "") -> None:
        super().__init__(path)
        self.dealer_id = dealer_id

    def encode(self, record: DI | DO | Fence) -> dict[str, Any]:
        if isinstance(record, Fence):
            raise TypeError(f"{self.DESK}'s journal keeps no fence lines")
        return record.to_dict()

    def confirmed(self, outcome: DO) -> bool:
        return outcome.filled

    def trade_id(self, outcome: DO) -> str:
        return outcome.desk_trade_id
