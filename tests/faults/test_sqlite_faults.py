"""SQLite store faults in the middle of last look, in process: a store made immutable (the
closest to a read-only disk while files are open: ``chattr +i``) and a full file system (a
tiny tmpfs). Both need root; they are skipped without it. The engine must halt while the
store is down and lose nothing, then finish the RFQ once writes work again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rfq_engine.domain import Award, RfqState
from rfq_engine.store import SqlAuditStore, StoreError, StoreState
from tests.faults.conftest import EngineOnStore, MakeEngine, until

ROOT = os.geteuid() == 0


def run(*argv: str) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    if not (ROOT and shutil.which("chattr") and run("chattr", "+i", *map(str, paths))):
        pytest.skip("needs root and chattr on a file system with the immutable attribute")
    try:
        yield
    finally:
        run("chattr", "-i", *map(str, paths))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if not (ROOT and run("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount))):
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield mount
    finally:
        run("umount", "-l", str(mount))


async def assert_halted_then_filled(h: EngineOnStore, rfq_id: str, award: Award,
                                    repair: object) -> None:
    h.dealers.confirm(award)
    await until(lambda: h.store.health.state is StoreState.DOWN)
    assert h.engine.halted is not None and "audit store unavailable" in h.engine.halted
    await asyncio.sleep(0.3)  # a few more failed attempts while it stays down
    repair()  # type: ignore[operator]
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    await h.store.flush()
    types = await h.types(rfq_id)
    assert types.index("execution.confirmed") < types.index("fill.recorded")
    assert h.store.health.state is StoreState.UP and h.store.stats.failed_events == 0
    assert (await h.store.verify()).ok


async def test_store_made_read_only_in_last_look(tmp_path: Path, make_engine: MakeEngine) -> None:
    db = tmp_path / "audit.db"
    h = await make_engine(f"sqlite+aiosqlite:///{db}")
    rfq_id, award = await h.to_last_look()
    files = [db, Path(f"{db}-wal"), tmp_path / "audit.head"]
    with immutable(*files):
        await assert_halted_then_filled(h, rfq_id, award,
                                        lambda: run("chattr", "-i", *map(str, files)))


async def test_file_system_full_in_last_look(tmpfs: Path, make_engine: MakeEngine) -> None:
    db = tmpfs / "audit.db"
    h = await make_engine(f"sqlite+aiosqlite:///{db}", checkpoint_path=tmpfs / "audit.head")
    rfq_id, award = await h.to_last_look()
    ballast = tmpfs / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):  # until the file system is full
            while os.write(fd, b"\0" * 65536):
                pass
    finally:
        os.close(fd)
    await assert_halted_then_filled(h, rfq_id, award, ballast.unlink)


async def test_a_writer_refuses_to_open_a_read_only_store(tmp_path: Path) -> None:
    """A store on read-only storage (here its directory and files immutable): the writer
    does not open (``rfq serve`` / ``rfq request`` exit 1 with the message)."""
    directory = tmp_path / "store"
    directory.mkdir()
    db = directory / "audit.db"
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}") as store:
        await store.append("r1", "test.x", "engine", {})
    with immutable(directory, db, Path(f"{db}.head"), Path(f"{db}.lock")), \
            pytest.raises(StoreError, match="audit store: open failed"):
        await SqlAuditStore(f"sqlite+aiosqlite:///{db}").open()
