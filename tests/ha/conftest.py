"""A PostgreSQL database of each test's own (tests/faults/pgkit.py), for the in-process
leadership tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.faults.pgkit import PgDatabase, fresh_database


@pytest.fixture
async def db() -> AsyncIterator[PgDatabase]:
    if os.environ.get("RFQ_TEST_SKIP_PG") == "1":
        pytest.skip("RFQ_TEST_SKIP_PG=1")
    async with fresh_database() as made:
        yield made
