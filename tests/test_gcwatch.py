"""GcWatch times every collection and logs the long ones; LoopWatch writes the stacks of a
blocked event loop while it is blocked."""

from __future__ import annotations

import gc
import logging

import pytest

from rfq_engine.gcwatch import GcWatch


def test_a_collection_over_the_threshold_is_logged_and_the_hook_goes_with_close(
        caplog: pytest.LogCaptureFixture) -> None:
    keep = [[i, [i]] for i in range(200_000)]  # something to walk
    watch = GcWatch(threshold_s=0.0)  # every collection is "long"
    try:
        with caplog.at_level(logging.WARNING, logger="rfq_engine.gcwatch"):
            gc.collect()
        assert watch.slow >= 1 and watch.longest_s > 0
        assert any("garbage collection of generation 2 took" in r.getMessage()
                   for r in caplog.records)
    finally:
        watch.close()
    assert watch._on_gc not in gc.callbacks
    quiet = GcWatch(threshold_s=60.0)
    try:
        gc.collect()
        assert quiet.slow == 0 and quiet.longest_s > 0
    finally:
        quiet.close()
    del keep


async def test_a_blocked_loop_has_its_stacks_written_while_it_is_blocked(
        capfd: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import time

    from rfq_engine.gcwatch import LoopWatch

    watch = LoopWatch(stall_s=0.3, every_s=0.05)
    try:
        await asyncio.sleep(0.5)  # the loop turns: no dump
        assert "most recent call first" not in capfd.readouterr().err
        time.sleep(0.6)  # noqa: ASYNC251 - the point: a blocked loop, its stacks written meanwhile
        err = capfd.readouterr().err
        assert "most recent call first" in err
        assert "test_a_blocked_loop_has_its_stacks_written_while_it_is_blocked" in err, err
    finally:
        watch.close()
    time.sleep(0.4)  # noqa: ASYNC251 - disarmed: nothing more
    assert "most recent call first" not in capfd.readouterr().err
