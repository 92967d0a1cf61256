"""Private PostgreSQL 15 clusters on this machine: a primary and synchronous standbys.

``ReplicatedPostgres`` makes them with ``initdb`` and ``pg_basebackup`` under a temp dir
(owned by the ``postgres`` user when the tests run as root: initdb refuses root), streams
WAL from the primary to the standbys with ``synchronous_commit = on`` and quorum commit,
``synchronous_standby_names = 'ANY 1 (*)'`` (a commit returns once one standby has flushed
it), and fails the primary over the way Patroni would: the primary dies (``pg_ctl stop -m
immediate``: no shutdown checkpoint, a crash as far as the data is concerned), the standby
that received the most WAL is promoted (it holds every acknowledged commit: each is on at
least one standby, and WAL is one stream), the other standbys are pointed at it
(``primary_conninfo`` reloaded; they follow the new timeline) and one of them is its
synchronous standby at once. The dead node is rebuilt from the new primary afterwards
(``rebuild``), off the failover's path, so the set is whole again for the next failover.

With two nodes (``ports`` of two) the promoted primary has no standby until the dead one is
rebuilt: under strict synchronous replication it acknowledges no commit meanwhile, so the
failover lasts as long as a base backup (docs/architecture.md, "High availability").

Engines reach "whichever is primary" through one URL naming every host with
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

__all__ = ["PG_BIN", "FailoverTimes", "Node", "ReplicatedPostgres", "available",
           "skip_without_clusters"]



def _newest_bin() -> Path:
    """The newest installed server's binaries (Debian layout), 15 when none is found."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = Path(os.environ.get("RFQ_TEST_PG_BIN") or _newest_bin())
DATABASE = "rfq"

CONF = """
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
wal_retrieve_retry_interval = '100ms'
# A client whose machine vanished (no FIN, no RST) is dropped within about 5 s: with these
# a session idle in a transaction on a dead link (holding the FOR SHARE of leader_epochs
# a new leader's epoch waits for) ends as fast as the lock's own (deploy/ha/README.md).
tcp_keepalives_idle = 2
tcp_keepalives_interval = 1
tcp_keepalives_count = 3
tcp_user_timeout = 5000
log_min_messages = warning
logging_collector = off
"""
HBA = """
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


SYNCHRONOUS = "ANY 1 (*)"


def _psql(node: Node, sql: str) -> None:
    _run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres",
          "-d", "postgres", "-c", sql])


async def _received(node: Node) -> int:
    """How far a standby has received WAL (bytes); -1 if it does not answer."""
    try:
        conn = await asyncpg.connect(f"{node.dsn}/postgres", timeout=5)
        try:
            return int(await conn.fetchval(
                "SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), "
                "pg_last_wal_replay_lsn()), '0/0')"))
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError):
        return -1


def skip_without_clusters() -> None:
    """Skip the calling test where private clusters cannot be made (or PG is skipped)."""
    import pytest

    if os.environ.get("RFQ_TEST_SKIP_PG") == "1":
        pytest.skip("RFQ_TEST_SKIP_PG=1")
    if not available():
        pytest.skip("no PostgreSQL 15 binaries (initdb) here")


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


@dataclass
class FailoverTimes:
    """Seconds from the primary's crash to: the promotion done, a synchronous standby."""

    promoted_s: float
    synchronous_s: float


class ReplicatedPostgres:
    """A primary and its synchronous standby (or standbys), each on a free port."""

    def __init__(self, ports: tuple[int, ...], listen: tuple[str, ...] = ("127.0.0.1",)) -> None:
        if len(ports) < 2:
            raise ValueError("a primary and at least one standby")
        self.root = Path(tempfile.mkdtemp(prefix="rfq-ha-pg-"))
        owner = _postgres_user() if os.geteuid() == 0 else None
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.nodes = [Node(self.root / f"node{i}", port) for i, port in enumerate(ports)]
        self.primary, *self.standbys = self.nodes
        self.dead: Node | None = None
        """The crashed primary of the last failover, until ``rebuild``."""
        self.failovers = 0
        self.times: list[FailoverTimes] = []
        self.listen = listen
        """The addresses the nodes listen on (and accept trusted connections from, /24)."""

    @property
    def url(self) -> str:
        """Every host; the driver picks the one that accepts writes."""
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
            conf.write(CONF + f"listen_addresses = '{','.join(self.listen)}'\n")
        hba = "".join(f"host all all {a.rsplit('.', 1)[0]}.0/24 trust\n"
                      f"host replication all {a.rsplit('.', 1)[0]}.0/24 trust\n"
                      for a in self.listen if a != "127.0.0.1")
        (primary.directory / "pg_hba.conf").write_text(HBA + hba, encoding="utf-8")
        primary.start()
        _psql(primary, f"CREATE DATABASE {DATABASE}")
        for standby in self.standbys:
            self._build_standby(standby)
        # From now on a commit waits for a standby; on every node (ALTER SYSTEM writes
        # postgresql.auto.conf, which every later base backup copies), so a promoted node
        # keeps waiting for a standby of its own.
        for node in self.nodes:
            _psql(node, f"ALTER SYSTEM SET synchronous_standby_names = '{SYNCHRONOUS}'")
            _psql(node, "SELECT pg_reload_conf()")

    def _build_standby(self, node: Node) -> None:
        """A fresh standby of the current primary on ``node``'s port, streaming."""
        if node.directory.exists():
            shutil.rmtree(node.directory)
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
              "-U", "postgres", "-D", str(node.directory), "-R", "-X", "stream", "-c",
              "fast", "--no-sync"], timeout=120)
        node.start()

    async def wait_synchronous(self, timeout: float = 60) -> None:
        """Until the primary reports a synchronous standby (commits wait for it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = await asyncpg.connect(f"{self.primary.dsn}/postgres", timeout=5)
                try:
                    states = {r[0] for r in await conn.fetch(
                        "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'")}
                finally:
                    await conn.close()
                if states & {"sync", "quorum"}:
                    return
            except (OSError, asyncpg.PostgresError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("no synchronous standby attached in time")
            await asyncio.sleep(0.1)

    async def fail_over(self) -> None:
        """The primary crashes; the standby with the most WAL is promoted, the others follow
        it. Returns once it has a synchronous standby: at once with a spare standby, after
        ``rebuild`` (here, of the dead node) with none."""
        crashed = self.primary
        await asyncio.to_thread(crashed.crash)
        started = time.monotonic()
        received = {n.port: await _received(n) for n in self.standbys}
        best = max(self.standbys, key=lambda n: received[n.port])
        await asyncio.to_thread(best.promote)
        promoted = time.monotonic() - started
        self.primary, self.dead = best, crashed
        self.standbys = [n for n in self.standbys if n is not best]
        self.failovers += 1
        for node in self.standbys:
            await asyncio.to_thread(self._follow, node)
        if not self.standbys:
            await self.rebuild()
        await self.wait_synchronous()
        self.times.append(FailoverTimes(promoted, time.monotonic() - started))

    def _follow(self, node: Node) -> None:
        conninfo = f"host=127.0.0.1 port={self.primary.port} user=postgres"
        _psql(node, f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
        _psql(node, "SELECT pg_reload_conf()")

    async def rebuild(self) -> None:
        """The dead node of the last failover as a new standby of the primary."""
        node, self.dead = self.dead, None
        if node is not None:
            await asyncio.to_thread(self._build_standby, node)
            self.standbys.append(node)

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
