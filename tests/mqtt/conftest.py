"""Fixtures for the MQTT tests: ``make_world`` starts a private Mosquitto per call."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.mqtt.kit import MOSQUITTO, World

MakeWorld = Callable[..., Awaitable[World]]


def require_mosquitto() -> None:
    if os.environ.get("RFQ_TEST_SKIP_MQTT") == "1":
        pytest.skip("RFQ_TEST_SKIP_MQTT=1")
    if not Path(MOSQUITTO).is_file():
        pytest.fail(f"mosquitto not found at {MOSQUITTO}: install it (apt-get install mosquitto) or "
                    "set RFQ_MOSQUITTO; RFQ_TEST_SKIP_MQTT=1 skips these tests")


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[MakeWorld]:
    """``await make_world()``: a running broker with desks desk-a, desk-b and desk-c known to it.

    Everything the world started (engines, bots, dealer processes, raw clients, the
    broker) is stopped at teardown, the broker with SIGKILL.
    """
    require_mosquitto()
    worlds: list[World] = []

    async def make(desks: tuple[str, ...] = ("desk-a", "desk-b", "desk-c")) -> World:
        world = World(tmp_path / f"world{len(worlds)}", desks)
        worlds.append(world)
        await world.broker.start()
        return world

    yield make
    for world in worlds:
        await world.close()
