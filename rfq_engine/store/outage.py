"""A store fault, as the writer handles it: the retry policy and the store's health.

A batch whose commit fails is never dropped while later events go on: that would leave a
hole in the record (an award "pending" followed by its fill, the confirm in between
gone). The writer keeps the batch, with the seqs and hashes it was linked with, and
retries it on a new connection (``reconnect``) with an exponential backoff, holding every
later event queued behind it, in order. The store is *down* from the first retry that
fails too (a single lost connection that the immediate retry repairs is a warning, not an
outage). Watchers are told when it goes down, comes back, or the writer stops.

An idle writer probes the store (reads the chain's head) every ``probe_interval_s``: a
store that went away while nothing was written is down all the same, and a head that
moved under the writer (someone else appended) fences it. An idle outage never stops the
writer (nothing waits); it ends with the next probe or commit that works.

The retries are bounded: after ``give_up_after_s`` of one outage, or with more than
``max_queued`` events waiting, or ``close_grace_s`` after ``close()`` was asked while the
store is down, the writer *stops*: it fails every waiting future with ``StoreError``,
refuses new events, and writes nothing more. What the store holds is then a prefix of
what happened, never a record with a hole, and the next writer (a restart) recovers from
it. An error that retrying cannot cure (``WriterFenced``: another writer took the lock,
the chain moved under this writer) stops it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol

from rfq_engine.domain import utc_now
from rfq_engine.store.base import StoreError

__all__ = [
    "UP", "HealthTracker", "HealthWatcher", "RetryPolicy", "StoreHealth", "StoreState",
    "WriterFenced", "WriterHealth", "describe",
]

log = logging.getLogger("rfq_engine.store.writer")


class WriterFenced(StoreError):
    """This writer may no longer write: another writer holds the lock, or the chain's head
    moved under it. Retrying cannot help; the writer stops."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay_s: float = 0.05
    """The wait before the second retry; the first retry follows the failure at once."""
    max_delay_s: float = 2.0
    """The backoff doubles up to this."""
    give_up_after_s: float = 120.0
    """One outage longer than this stops the writer (``[store] outage_limit_s``)."""
    max_queued: int = 100_000
    """More events than this waiting in memory during an outage stops the writer."""
    close_grace_s: float = 10.0
    """``close()`` with the store down retries for at most this long, then stops."""
    probe_interval_s: float | None = 2.0
    """An idle writer reads the head this often, so an outage is seen (and the head is
    confirmed its own) without waiting for the next event; None: never."""

    def __post_init__(self) -> None:
        if self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError("retry delays must be positive, first <= max")
        if self.give_up_after_s <= 0 or self.close_grace_s < 0 or self.max_queued < 1:
            raise ValueError("retry limits must be positive")

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failed retries (1, 2, ...)."""
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** max(0, failures - 1))


class StoreState(StrEnum):
    UP = "up"
    DOWN = "down"
    """Commits fail; the writer retries, every new event waits in memory, in order."""
    STOPPED = "stopped"
    """The writer gave up (or was fenced): nothing more is written by this process."""


@dataclass(frozen=True, slots=True)
class StoreHealth:
    state: StoreState
    since: datetime | None = None
    """When the store went down, or the writer stopped."""
    error: str | None = None
    """The last error (down, stopped)."""
    attempts: int = 0
    """Failed commit attempts in the current outage."""

    @property
    def up(self) -> bool:
        return self.state is StoreState.UP

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state.value, "since": self.since, "error": self.error,
                "attempts": self.attempts}


UP: Final = StoreHealth(StoreState.UP)
HealthWatcher = Callable[[StoreHealth], None]
"""Called on the event loop, synchronously, at each change of state; must not block."""


def describe(error: BaseException) -> str:
    """One line for a store error: no SQL or parameters (they carry payloads)."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


class HealthTracker:
    """The store's health as the writer sees it: state changes, their log lines at error
    level, and the watchers told of each."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.health: StoreHealth = UP
        self._watchers: list[HealthWatcher] = []

    def watch(self, watcher: HealthWatcher) -> None:
        self._watchers.append(watcher)

    def failed(self, error: BaseException, failures: int, waiting: int) -> bool:
        """A retry failed too (``failures`` of them): the store is down. True if it just went."""
        text = describe(error)
        if self.health.state is StoreState.UP:
            self.health = StoreHealth(StoreState.DOWN, utc_now(), text, failures)
            log.error("audit store unavailable: %s; %d events wait in order, nothing is dropped; "
                      "retrying with backoff for up to %g s (runbooks/store-down.md)",
                      text, waiting, self.policy.give_up_after_s)
            self._tell()
            return True
        self.health = replace(self.health, error=text, attempts=failures)
        if failures % 10 == 0:
            log.error("audit store still unavailable after %d attempts: %s; %d events wait",
                      failures, text, waiting)
        return False

    def recovered(self, waiting: int) -> None:
        if self.health.state is not StoreState.DOWN:
            return
        since = self.health.since
        down_for = 0.0 if since is None else (utc_now() - since).total_seconds()
        log.warning("audit store back after %.1f s; the %d events that waited are being written",
                    down_for, waiting)
        self.health = UP
        self._tell()

    def stopped(self, reason: str) -> None:
        self.health = StoreHealth(StoreState.STOPPED, utc_now(), reason, self.health.attempts)
        self._tell()

    def _tell(self) -> None:
        for watcher in tuple(self._watchers):
            try:
                watcher(self.health)
            except Exception:  # a broken watcher must not break the writer
                log.exception("a store health watcher failed")


class _Watched(Protocol):
    @property
    def health(self) -> StoreHealth: ...

    def watch(self, watcher: HealthWatcher) -> None: ...


class WriterHealth:
    """``health`` and ``watch_health`` of a store whose writer, while open, is ``_writer``:
    watchers registered before ``open`` are handed to each writer it starts (``_attach``)."""

    _writer: _Watched | None
    _watchers: list[HealthWatcher]

    @property
    def health(self) -> StoreHealth:
        return UP if self._writer is None else self._writer.health

    def watch_health(self, watcher: HealthWatcher) -> None:
        self._watchers.append(watcher)
        if self._writer is not None:
            self._writer.watch(watcher)

    def _attach(self, writer: _Watched) -> None:
        for watcher in self._watchers:
            writer.watch(watcher)
