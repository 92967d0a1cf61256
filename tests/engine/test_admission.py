"""``[engine] max_live_rfqs``: an engine takes a bounded number of RFQs at once.

A new RFQ beyond the bound is refused (``EngineBusy``, the API's 503 ``busy``) before
anything is audited, and admitted again as soon as one has ended. A retry of an RFQ the
engine already holds (same ``client_rfq_id``) is an answer, not new work: it is never
refused. The end-to-end case, a stalled disk under ``rfq serve``, is in
tests/faults/test_stalled_store_admission.py.
"""

from __future__ import annotations

import pytest

from rfq_engine.domain import RfqState
from rfq_engine.engine import EngineBusy, EngineConfig
from tests.engine.conftest import MakeHarness, future_rfq


async def submitted_count(h) -> int:  # type: ignore[no-untyped-def]
    return len([e for e in await h.store.events() if e.type == "rfq.submitted"])


async def test_an_rfq_beyond_max_live_rfqs_is_refused_until_one_ends(make_harness: MakeHarness) -> None:
    h = await make_harness(config=EngineConfig(confirm_timeout_ms=1000, max_live_rfqs=2))
    first = await h.engine.submit(future_rfq(window_ms=60_000, client_rfq_id="c-1"))
    await h.engine.submit(future_rfq(window_ms=60_000))

    with pytest.raises(EngineBusy, match=r"2 RFQs are live.*max_live_rfqs = 2"):
        await h.engine.submit(future_rfq(window_ms=60_000))
    assert await submitted_count(h) == 2  # the refused one left no trace but the answer

    # A retry of one it holds is answered with its id, busy or not.
    assert await h.engine.submit(future_rfq(window_ms=60_000, client_rfq_id="c-1")) == first
    with pytest.raises(EngineBusy):
        await h.engine.submit(future_rfq(window_ms=60_000, client_rfq_id="c-2"))

    await h.engine.cancel(first, actor="alice")
    assert await h.engine.wait(first, 5) is RfqState.CANCELLED
    third = await h.engine.submit(future_rfq(window_ms=60_000, client_rfq_id="c-2"))
    assert h.engine.live(third) is not None
    assert await submitted_count(h) == 3
