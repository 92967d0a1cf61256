"""The writer's answer to a failed commit, on the memory store (no database needed): a
commit that landed before its error is not written twice, a fenced writer stops at once,
the retry policy's arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from rfq_engine.store import InMemoryAuditStore, StoreError, StoreState
from rfq_engine.store.outage import RetryPolicy, WriterFenced


class FlakyStore(InMemoryAuditStore):
    """Raises ``error`` from the next commit, after (``landed``) or instead of committing."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.error: BaseException | None = None
        self.landed = False

    async def _commit(self, parts: list[Any]) -> None:
        error, self.error = self.error, None
        if error is not None and not self.landed:
            raise error
        await super()._commit(parts)
        if error is not None:
            raise error


async def test_a_commit_that_landed_before_its_error_is_not_written_twice() -> None:
    store = FlakyStore()
    await store.open()
    store.error, store.landed = OSError("connection lost during COMMIT"), True
    first = store.append("r1", "test.x", "engine", {"i": 0})
    second = store.append("r1", "test.x", "engine", {"i": 1})
    assert [(await first).seq, (await second).seq] == [1, 2]
    assert [e.seq for e in await store.events()] == [1, 2]
    assert store.stats.failed_commits == 1 and store.health.state is StoreState.UP
    await store.close()


async def test_a_commit_that_failed_once_is_committed_by_the_retry() -> None:
    store = FlakyStore()
    await store.open()
    store.error = OSError("connection reset")
    event = await store.append("r1", "test.x", "engine", {})
    assert event.seq == 1 and [e.seq for e in await store.events()] == [1]
    assert store.stats.failed_commits == 1 and store.stats.outages == 0
    await store.close()


async def test_a_fenced_writer_stops_at_once() -> None:
    store = FlakyStore(retry=RetryPolicy(give_up_after_s=60))
    await store.open()
    states: list[StoreState] = []
    store.watch_health(lambda h: states.append(h.state))
    store.error = WriterFenced("another writer holds the audit lock")
    with pytest.raises(StoreError, match="stopped: another writer holds the audit lock"):
        await store.append("r1", "test.x", "engine", {})
    assert states == [StoreState.STOPPED] and await store.events() == []
    await store.close()


def test_retry_policy_backoff_and_limits() -> None:
    policy = RetryPolicy(first_delay_s=0.05, max_delay_s=2)
    assert [policy.delay(n) for n in (1, 2, 3, 7, 20)] == [0.05, 0.1, 0.2, 2, 2]
    for bad in ({"first_delay_s": 0}, {"max_delay_s": 0.01}, {"give_up_after_s": 0},
                {"max_queued": 0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
