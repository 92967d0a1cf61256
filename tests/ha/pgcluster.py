"""Two private PostgreSQL 15 clusters on this machine: a primary and a synchronous standby.

``ReplicatedPostgres`` makes them with ``initdb`` and ``pg_basebackup`` under a temp dir
(owned by the ``postgres`` user when the tests run as root: initdb refuses root), streams
WAL from the primary to the standby with ``synchronous_commit = on`` and
``synchronous_standby_names = '*'`` (a commit returns once the standby has flushed it), and
fails the primary over the way an operator (or Patroni) would: the primary dies
(``pg_ctl stop -m immediate``: no shutdown checkpoint, a crash as far as the data is
concerned), the standby is promoted, and a new standby is built from the new primary on
the dead one's port, so the pair is whole again for the next failover.

Engines reach "whichever is primary" through one URL naming both hosts with
``target_session_attrs=read-write`` (libpq's and asyncpg's multi-host syntax).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

__all__ = ["PG_BIN", "Node", "ReplicatedPostgres", "available"]



def _newest_bin() -> Path:
    """The newest installed server's binaries (Debian layout), 15 when none is found."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = Path(os.environ.get("RFQ_TEST_PG_BIN") or _newest_bin())
DATABASE = "rfq"

CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
synchronous_commit = on
wal_keep_size = '64MB'
shared_buffers = '32MB'
max_connections = 60
fsync = on
log_min_messages = warning
logging_collector = off
"""
HBA = """
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or _postgres_user() is not None)


def _postgres_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _as_owner(args: list[str]) -> list[str]:
    """Run a PostgreSQL tool as ``postgres`` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _run(args: list[str], timeout: float = 60) -> None:
    done = subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n"
                           f"{done.stderr}")


@dataclass
class Node:
    directory: Path
    port: int

    @property
    def log(self) -> Path:
        return self.directory.parent / f"{self.directory.name}.log"

    def start(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-l", str(self.log),
              "-o", f"-p {self.port}", "-w", "-t", "60", "start"], timeout=90)

    def crash(self) -> None:
        """Immediate shutdown: every session cut, no checkpoint (what a crash leaves)."""
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-m", "immediate", "-w",
              "stop"], timeout=60)

    def stop(self) -> None:
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-m",
                                  "fast", "-w", "stop"]), capture_output=True, timeout=60,
                       check=False)

    def promote(self) -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-w", "promote"])

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"


class ReplicatedPostgres:
    """A primary and its synchronous standby, each on a free port."""

    def __init__(self, ports: tuple[int, int]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rfq-ha-pg-"))
        owner = _postgres_user() if os.geteuid() == 0 else None
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.nodes = [Node(self.root / "node0", ports[0]), Node(self.root / "node1", ports[1])]
        self.primary, self.standby = self.nodes
        self.failovers = 0

    @property
    def url(self) -> str:
        """Both hosts; the driver picks the one that accepts writes."""
        hosts = "&".join(f"host=127.0.0.1:{n.port}" for n in self.nodes)
        return f"postgresql+asyncpg://postgres@/{DATABASE}?{hosts}&target_session_attrs=read-write"

    async def start(self) -> None:
        await asyncio.to_thread(self._initdb)
        await self.wait_synchronous()

    def _initdb(self) -> None:
        primary = self.primary
        _run([str(PG_BIN / "initdb"), "-D", str(primary.directory), "-U", "postgres",
              "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], timeout=120)
        with open(primary.directory / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(CONF)
        (primary.directory / "pg_hba.conf").write_text(HBA, encoding="utf-8")
        primary.start()
        _run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
              "postgres", "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"])
        self._rebuild_standby()
        # From now on a commit waits for the standby; on both nodes (ALTER SYSTEM writes
        # postgresql.auto.conf, which every later base backup copies), so a promoted node
        # keeps waiting for a standby of its own.
        for node in self.nodes:
            for sql in ("ALTER SYSTEM SET synchronous_standby_names = '*'",
                        "SELECT pg_reload_conf()"):
                _run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(node.port), "-U",
                      "postgres", "-d", "postgres", "-c", sql])

    def _rebuild_standby(self) -> None:
        """A fresh standby of the current primary, streaming, on the standby node's port."""
        standby = self.standby
        if standby.directory.exists():
            shutil.rmtree(standby.directory)
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
              "-U", "postgres", "-D", str(standby.directory), "-R", "-X", "stream", "-c",
              "fast", "--no-sync"], timeout=120)
        standby.start()

    async def wait_synchronous(self, timeout: float = 60) -> None:
        """Until the primary reports a synchronous standby (commits wait for it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = await asyncpg.connect(f"{self.primary.dsn}/postgres", timeout=5)
                try:
                    state = await conn.fetchval(
                        "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'")
                finally:
                    await conn.close()
                if state == "sync":
                    return
            except (OSError, asyncpg.PostgresError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("no synchronous standby attached in time")
            await asyncio.sleep(0.1)

    async def fail_over(self) -> None:
        """The primary crashes; the standby is promoted; a new standby is built from it on
        the old primary's port. Returns once the new pair is synchronous again."""
        await asyncio.to_thread(self.primary.crash)
        await asyncio.to_thread(self.standby.promote)
        self.primary, self.standby = self.standby, self.primary
        self.failovers += 1
        await asyncio.to_thread(self._rebuild_standby)
        await self.wait_synchronous()

    async def execute(self, sql: str) -> str:
        conn = await asyncpg.connect(f"{self.primary.dsn}/{DATABASE}", timeout=5)
        try:
            return str(await conn.execute(sql))
        finally:
            await conn.close()

    def close(self) -> None:
        for node in self.nodes:
            if node.directory.exists():
                node.stop()
        if not os.environ.get("RFQ_HA_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)
