"""A player of QuickFIX's session acceptance scripts (``test/definitions/server/fix44/*.def``),
turned around to test our initiator (``dealer_adapters.fix.session.FixSession``).

The scripts' format (QuickFIX's ``test/`` harness): ``iCONNECT`` / ``iDISCONNECT`` (the
harness connects, drops), ``I<message>`` (the harness sends it; ``<TIME>``, ``<TIME+N>``,
``<TIME-N>`` are now and now ± N seconds; BodyLength and CheckSum are computed unless the
line has them, so a wrong one is sent as written), ``E<message>`` (the session under test
must send this; BodyLength, CheckSum and ``00000000-00:00:00`` timestamps match anything),
``eDISCONNECT`` (the session under test must close the connection).

The scripts test an acceptor: the harness is the initiator TW44 and the session under test
the acceptor ISLD. Here the player listens and our initiator connects as ISLD to TW44, so
every ``I`` line is the counterparty and every ``E`` line is us, as written, with two
changes that follow from the roles:

- **Who logs on first**: an initiator sends its Logon before it gets one, so the opening
  ``I`` Logon and the ``E`` Logon that answers it are played in the other order.
- **Echoes**: QuickFIX's test server application echoes every application message back
  (the ``E`` lines that repeat a NewOrderSingle). Our session hands an application message
  to its handler instead: such a line is checked as "the handler got it", and our later
  MsgSeqNums are one lower for each.

A script with several ``iCONNECT`` sections runs each on a fresh session (QuickFIX's test
acceptor starts each connection from 1 too).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dealer_adapters.fix.codec import FixMessage
from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.fix.session import ADMIN_TYPES, FixSession

__all__ = ["Recorder", "Section", "play", "sections"]

SOH = "\x01"
WAIT_S = 5.0
_TIME = re.compile(r"<TIME([+-]\d+)?>")
_ANY_TIME = re.compile(r"^(0{8}-00:00:00(\.000)?|<TIME([+-]\d+)?>)$")


@dataclass
class Section:
    """The lines of one connection of a script."""

    lines: list[str]


def sections(text: str) -> list[Section]:
    """The script's connections, comments and blank lines dropped; ``ValueError`` for a
    command the player does not know."""
    out: list[Section] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if line == "iCONNECT":
            out.append(Section([]))
            continue
        if line[0] not in "IE" and line not in ("eDISCONNECT", "iDISCONNECT"):
            raise ValueError(f"unknown script line {line[:40]!r}")
        if not out:
            raise ValueError("a line before iCONNECT")
        out[-1].lines.append(line)
    return out


@dataclass
class Recorder:
    """The session's handler: what reached the application, and the session's states."""

    application_types: frozenset[str] = frozenset({"D"})
    """What QuickFIX's test application takes (and echoes): the scripts send NewOrderSingles."""
    application: list[FixMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    rejects: list[FixMessage] = field(default_factory=list)
    states: list[tuple[bool, str]] = field(default_factory=list)
    garbled: list[str] = field(default_factory=list)

    async def on_application(self, message: FixMessage) -> None:
        self.application.append(message)
        self.arrived.set()

    async def wait_application(self, msg_type: str, cl_ord_id: str | None) -> bool:
        try:
            async with asyncio.timeout(WAIT_S):
                while not any(m.msg_type == msg_type and m.get(11) == cl_ord_id for m in self.application):
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            return False
        return True

    async def on_session_reject(self, message: FixMessage) -> None:
        self.rejects.append(message)

    def on_state(self, logged_on: bool, reason: str) -> None:
        self.states.append((logged_on, reason))

    def on_garbled(self, reason: str, raw: bytes) -> None:
        self.garbled.append(reason)


def _fields(text: str) -> list[tuple[int, str]]:
    return [(int(tag), value) for tag, _, value in (f.partition("=") for f in text.split(SOH) if f)]


def _type(text: str) -> str:
    return dict(_fields(text)).get(35, "")


def _outbound(text: str) -> bytes:
    """An ``I`` line as the bytes the harness sends."""
    now = datetime.now(UTC)

    def stamp(match: re.Match[str]) -> str:
        moment = now + timedelta(seconds=int(match.group(1) or 0))
        return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"

    fields = [f for f in _TIME.sub(stamp, text).split(SOH) if f]
    begin, rest = fields[0], fields[1:]
    checksum = next((f for f in rest if f.startswith("10=")), None)
    body = [f for f in rest if not f.startswith(("9=", "10="))]
    length = next((f for f in rest if f.startswith("9=")), None)
    payload = "".join(f + SOH for f in body)
    head = begin + SOH + (length or f"9={len(payload.encode())}") + SOH
    data = (head + payload).encode()
    trailer = checksum or f"10={sum(data) % 256:03d}"
    return data + trailer.encode() + SOH.encode()


def _matches(expected: str, got: bytes, shift: int) -> str:
    """"" when ``got`` is the ``E`` line's message, else what differs."""
    want = [(t, v) for t, v in _fields(expected) if t not in (9, 10)]
    have = [(t, v) for t, v in _fields(got.decode("utf-8", "replace")) if t not in (9, 10)]
    problems: list[str] = []
    have_map = dict(have)
    for tag, value in want:
        if tag not in have_map:
            problems.append(f"{tag} missing")
        elif _ANY_TIME.match(value):
            continue
        elif tag == 34 and int(have_map[tag]) != int(value) - shift:
            problems.append(f"34={have_map[tag]}, expected {int(value) - shift}")
        elif tag != 34 and have_map[tag] != value:
            problems.append(f"{tag}={have_map[tag]!r}, expected {value!r}")
    extra = sorted({t for t, _ in have} - {t for t, _ in want})
    if extra:
        problems.append(f"extra fields {extra}")
    return "; ".join(problems)


class _Wire:
    """The player's end of the connection: messages out, whole messages in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)
            await self.writer.drain()

    async def receive(self) -> bytes | None:
        """The next message, or None at the end of the connection."""
        while True:
            end = self.buffer.find(b"\x0110=")
            if end >= 0:
                stop = self.buffer.find(b"\x01", end + 1)
                if stop >= 0:
                    message, self.buffer = self.buffer[: stop + 1], self.buffer[stop + 1:]
                    return message
            try:
                chunk = await self.reader.read(65_536)
            except ConnectionError:
                return None
            if not chunk:
                return None
            self.buffer += chunk


def _comp_ids(section: Section) -> tuple[str, str]:
    """Ours and the counterparty's CompIDs: the acceptor's and the harness's in the script,
    as the first message we must send names them (else ISLD and TW, those of QuickFIX 1.15)."""
    for line in section.lines:
        if line.startswith("E") and "=" in line:
            fields = dict(_fields(line[1:]))
            if 49 in fields and 56 in fields:
                return fields[49], fields[56]
    return "ISLD", "TW"


def _heartbeat(section: Section) -> int:
    """The HeartBtInt(108) the script's Logons carry (30 when none does)."""
    for line in section.lines:
        if line[0] in "IE" and "=" in line and _type(line[1:]) == "A":
            value = dict(_fields(line[1:])).get(108, "30")
            if value.isdigit() and int(value) > 0:
                return int(value)
    return 30


async def play(section: Section, state_dir: Path) -> list[str]:
    """Play one connection against a fresh initiator; returns the failures (empty: passed)."""
    connected: asyncio.Queue[_Wire] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await connected.put(_Wire(reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ours, theirs = _comp_ids(section)
    config = FixDealerConfig.model_validate({
        "host": "127.0.0.1", "port": port, "sender_comp_id": ours, "target_comp_id": theirs,
        "state_dir": str(state_dir), "symbols": {"spot:BTC:USD": "BTC/USD"},
        "heartbeat_s": _heartbeat(section), "reconnect_min_ms": 60_000, "reconnect_max_ms": 60_000,
        "logon_timeout_ms": 2000,
    })
    recorder = Recorder()
    session = FixSession(config, recorder, store_path=state_dir / "session.json", environ={})
    task = asyncio.get_running_loop().create_task(session.run())
    failures: list[str] = []
    wire: _Wire | None = None
    try:
        wire = await asyncio.wait_for(connected.get(), WAIT_S)
        lines = list(section.lines)
        if (len(lines) > 1 and lines[0].startswith("I") and _type(lines[0][1:]) == "A"
                and lines[1].startswith("E") and _type(lines[1][1:]) == "A"):
            lines[0], lines[1] = lines[1], lines[0]  # an initiator logs on first
        elif not (lines and lines[0].startswith("E") and _type(lines[0][1:]) == "A"):
            ours = await asyncio.wait_for(wire.receive(), WAIT_S)  # our Logon, before theirs
            if ours is None or b"\x0135=A\x01" not in ours:
                failures.append(f"the initiator did not log on first: {ours!r}")
        shift = 0
        for number, line in enumerate(lines, start=1):
            where = f"line {number} {line[:60]!r}"
            if line == "iDISCONNECT":
                wire.writer.close()
                continue
            if line == "eDISCONNECT":
                try:
                    got = await asyncio.wait_for(wire.receive(), max(WAIT_S, 2.5 * config.heartbeat_s))
                except TimeoutError:
                    failures.append(f"{where}: the connection stayed open")
                    break
                if got is not None:
                    failures.append(f"{where}: got {got!r} instead of a disconnect")
                continue
            text = line[1:]
            if line[0] == "I":
                await wire.send(_outbound(text))
                continue
            if _type(text) not in ADMIN_TYPES | {"j"}:  # QuickFIX's test application would echo it
                expected = dict(_fields(text))
                if not await recorder.wait_application(expected.get(35, ""), expected.get(11)):
                    failures.append(f"{where}: the application message did not reach the handler")
                shift += 1
                continue
            try:
                got = await asyncio.wait_for(wire.receive(), max(WAIT_S, 2.5 * config.heartbeat_s))
            except TimeoutError:
                failures.append(f"{where}: nothing sent")
                break
            if got is None:
                failures.append(f"{where}: disconnected instead")
                break
            problem = _matches(text, got, shift)
            if problem:
                failures.append(f"{where}: got {got.decode(errors='replace')!r}: {problem}")
                break
    except TimeoutError:
        failures.append("the initiator never connected")
    finally:
        await session.close(logout=False)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if wire is not None:
            wire.writer.close()
        server.close()
        await server.wait_closed()
    return failures
