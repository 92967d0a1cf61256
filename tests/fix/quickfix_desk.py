"""A QuickFIX acceptor playing an OTC desk (``desk/qfdesk.cpp``), run as a process per desk.

QuickFIX (Debian's ``libquickfix-dev``) does the desk's whole session layer: logon,
heartbeats, its file message store, resends with PossDupFlag, and the validation of what we
send against its FIX 4.4 data dictionary (``FIX44.xml`` of the same QuickFIX release, from
Debian's source package; ``.ci/setup`` installs it at ``DICTIONARY``). The binary is built
once per source version (``build_desk``), in about 25 s.

``QuickFixDesk`` starts one, tells it what to do (``mode``, ``outage``, ``release``,
``drop``, ``dup``, ``cancel``: see the C++ file's header), and reads its events: every
message in and out (``inbound``/``outbound``, as ``tag=value|``), and what it executed.
``executed_count`` is the desk's own count of executions (distinct ClOrdIDs it filled);
tests compare it with the fills in the audit store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["DICTIONARY", "QuickFixDesk", "build_desk", "free_port", "require_quickfix"]

SOURCE = Path(__file__).parent / "desk" / "qfdesk.cpp"
DICTIONARY = Path(os.environ.get("RFQ_FIX_DICTIONARY", "/usr/local/share/quickfix/FIX44.xml"))
WAIT_S = 20.0


def require_quickfix() -> None:
    """Skip with RFQ_TEST_SKIP_FIX=1; otherwise a missing QuickFIX is a failure saying what to install."""
    if os.environ.get("RFQ_TEST_SKIP_FIX") == "1":
        pytest.skip("RFQ_TEST_SKIP_FIX=1")
    missing = [what for what, ok in (
        ("libquickfix-dev (apt-get install libquickfix-dev)",
         Path("/usr/include/quickfix/Session.h").exists()),
        (f"QuickFIX's FIX44.xml at {DICTIONARY} (.ci/setup installs it)", DICTIONARY.exists()),
        ("g++", shutil.which("g++") is not None),
    ) if not ok]
    if missing:
        pytest.fail(f"tests/fix need {', '.join(missing)}; run .ci/setup, or set RFQ_TEST_SKIP_FIX=1")


def build_desk() -> Path:
    """The desk binary for the current source (built once; cached by the source's hash)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"rfq-qfdesk-{digest}"
    if binary.exists():
        return binary
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "quickfix"], capture_output=True, text=True,
                           check=False).stdout.split() or ["-lquickfix"]
    partial = binary.with_name(binary.name + f".{os.getpid()}")
    command = ["g++", "-std=gnu++14", "-O1", "-w", "-DHAVE_SSL=1", "-o", str(partial), str(SOURCE), *flags,
               "-lssl", "-lcrypto", "-lpthread"]
    subprocess.run(command, check=True)
    partial.replace(binary)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class QuickFixDesk:
    def __init__(self, binary: Path, workdir: Path, *, sender: str = "DESK", target: str = "ENGINE",
                 bid: str = "39999", offer: str = "40010", validity_ms: int = 5000,
                 dictionary: bool = True, tls: tuple[Path, Path] | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.sender, self.target = sender, target
        self.bid, self.offer, self.validity_ms = bid, offer, validity_ms
        self.dictionary = dictionary
        self.tls = tls
        """(certificate, key) files: the desk listens with TLS."""
        self.port = free_port()
        self.events: list[str] = []
        self.executed: list[str] = []
        self.rejected: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = self.workdir / "desk.cfg"
        lines = [
            "[DEFAULT]", "ConnectionType=acceptor", f"SocketAcceptPort={self.port}", "SocketReuseAddress=Y",
            "StartTime=00:00:00", "EndTime=00:00:00", f"FileStorePath={self.workdir / 'store'}",
            f"FileLogPath={self.workdir / 'log'}", "ResetOnLogon=N", "PersistMessages=Y",
            f"UseDataDictionary={'Y' if self.dictionary else 'N'}",
        ]
        if self.dictionary:
            lines += [f"DataDictionary={DICTIONARY}", "ValidateUserDefinedFields=Y"]
        if self.tls is not None:
            lines += [f"ServerCertificateFile={self.tls[0]}", f"ServerCertificateKeyFile={self.tls[1]}",
                      "SSLProtocol=all -SSLv2 -SSLv3"]
        lines += ["", "[SESSION]", "BeginString=FIX.4.4", f"SenderCompID={self.sender}",
                  f"TargetCompID={self.target}", ""]
        settings.write_text("\n".join(lines))
        env = {**os.environ, **({"QFDESK_TLS": "1"} if self.tls is not None else {})}
        self._process = await asyncio.create_subprocess_exec(
            str(self.binary), str(settings), self.bid, self.offer, str(self.validity_ms), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_for(lambda: "READY" in self.events, "the desk to start")

    async def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.returncode is None:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.write(b"quit\n")
                await process.stdin.drain()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)

    # --- what the desk is told ---------------------------------------------------------

    async def command(self, line: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()

    def command_nowait(self, line: str) -> None:
        """``command`` from synchronous code (the bytes are written as soon as the loop runs)."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")

    async def mode(self, mode: str, slow_ms: int = 0) -> None:
        await self.command(f"mode {mode} {slow_ms}" if mode == "slow" else f"mode {mode}")

    # --- what it did -------------------------------------------------------------------

    @property
    def executed_count(self) -> int:
        return len(set(self.executed))

    def inbound(self, msg_type: str) -> list[str]:
        """Messages the desk received of ``msg_type`` (as ``8=FIX.4.4|9=...|``)."""
        return [e[3:] for e in self.events if e.startswith("IN ") and f"|35={msg_type}|" in e]

    def outbound(self, msg_type: str) -> list[str]:
        return [e[4:] for e in self.events if e.startswith("OUT ") and f"|35={msg_type}|" in e]

    def count(self, prefix: str) -> int:
        return sum(1 for e in self.events if e.startswith(prefix))

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join(self.events[-15:])
            raise AssertionError(f"timed out waiting for {what}; the desk's last events:\n{tail}") from None

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        while True:
            line = await stdout.readline()
            if not line:
                break
            text = line.decode("utf-8", "replace").rstrip("\n")
            self.events.append(text)
            if text.startswith("EXECUTED "):
                self.executed.append(text.split()[1])
            elif text.startswith("REJECTED "):
                self.rejected.append(text.split()[1])
            self._changed.set()
        self._changed.set()
