"""A FIX 4.4 initiator session on asyncio: logon, heartbeats, sequence numbers, resends.

``FixSession.run()`` connects (TCP or TLS), logs on, reads until the connection ends, and
reconnects with a doubling backoff until ``close()``. What it does, per FIX 4.4 Vol 2:

- **Logon**: ``Logon(A)`` with ``EncryptMethod(98)=0``, ``HeartBtInt(108)``, the credentials,
  and ``ResetSeqNumFlag(141)=Y`` (numbers back to 1) when ``reset_on_logon``. The first
  message back must be a Logon within ``logon_timeout_ms``, else the connection is dropped.
- **Heartbeats**: a ``Heartbeat(0)`` when nothing was sent for ``HeartBtInt``; a
  ``TestRequest(1)`` when nothing was received for ``HeartBtInt`` plus 20 %, and the
  connection dropped when that goes unanswered for another ``HeartBtInt``. A TestRequest
  from the desk is answered with its ``TestReqID(112)``. Timers run on the monotonic clock.
- **Sequence numbers** (``seqstore``): stored before each message leaves, and after each
  inbound message was handled (the handler's work, a journal write included, is done by then).
- **Inbound gaps**: a MsgSeqNum above the expected one sends ``ResendRequest(2)`` from the
  expected number to infinity, once per gap; messages after the gap wait and are handled in
  order once the resent ones (or a gap fill) close it. Below the expected number: with
  ``PossDupFlag(43)=Y`` it is a duplicate and is ignored; without, the session is logged
  out ("MsgSeqNum too low"), as FIX requires.
- **The desk's ResendRequest**: answered with one ``SequenceReset(4)``-GapFill over the
  whole range. Application messages are never resent: a quote request or an award that
  a gap swallowed is stale by then; an award's outcome is asked for instead
  (OrderStatusRequest), so one award is never two orders.
- ``SequenceReset(4)``: GapFill moves the expected number forward; Reset mode sets it
  (a lower NewSeqNo is refused with a ``Reject(3)``).
- Garbled bytes (a wrong BodyLength or CheckSum) are ignored and consume no number; a
  wrong BeginString, wrong CompIDs or a SendingTime more than 2 minutes off are logged
  out (CompIDs and SendingTime after a ``Reject(3)``).
- An unsolicited ``Logout(5)`` is answered with a Logout, then the connection is closed.

Application messages are handed to the ``SessionHandler`` in sequence order, awaited one
at a time. ``send`` raises ``NotSent`` when the message provably did not leave (not logged
on, or the sequence number could not be stored) and ``SendUnknown`` when the connection
failed while it was being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from dealer_adapters.fix.codec import (
    BEGIN_STRING,
    MSG_TYPES,
    FixMessage,
    Framer,
    Garbled,
    Pairs,
    encode,
    fix_time,
    parse_fix_time,
)
from dealer_adapters.fix.config import FixDealerConfig
from dealer_adapters.fix.seqstore import SeqNumbers, SeqStore
from rfq_engine.domain import ValidationError, utc_now
from rfq_engine.domain.errors import Unavailable, WireError

__all__ = ["ADMIN_TYPES", "FixSession", "NotSent", "SendUnknown", "SessionHandler"]

_log = structlog.get_logger(__name__)

ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})
SENDING_TIME_TOLERANCE = timedelta(minutes=2)
_READ_CHUNK = 65_536


class NotSent(Unavailable):
    """The message did not leave the process (no session, or its number could not be stored)."""


class SendUnknown(WireError):
    """The connection failed while the message was being written: it may have left."""


class SessionHandler(Protocol):
    application_types: frozenset[str]
    """The application MsgTypes it handles; another FIX 4.4 type is answered with a
    BusinessMessageReject (unsupported), one FIX 4.4 does not define with a Reject."""

    async def on_application(self, message: FixMessage) -> None:
        """An application message, in sequence order (resent ones carry PossDupFlag)."""
        ...

    async def on_session_reject(self, message: FixMessage) -> None:
        """A ``Reject(3)`` of one of our messages (``RefSeqNum(45)`` names it)."""
        ...

    def on_state(self, logged_on: bool, reason: str) -> None:
        """Logged on, or the session ended (and why)."""
        ...

    def on_garbled(self, reason: str, raw: bytes) -> None: ...


class _Disconnect(Exception):
    """End this connection (after whatever was sent); the run loop reconnects."""


class FixSession:
    def __init__(self, config: FixDealerConfig, handler: SessionHandler, *, store_path: Path,
                 environ: Mapping[str, str]) -> None:
        self.config = config
        self.handler = handler
        self.store = SeqStore(store_path, config.session_id)
        self.numbers: SeqNumbers = self.store.load()
        self._environ = environ
        self._writer: asyncio.StreamWriter | None = None
        self._logged_on = False
        self._closing = False
        self._closed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._queued: dict[int, FixMessage] = {}
        self._resend_to: int | None = None
        """While a ResendRequest of ours is open: the MsgSeqNum that revealed the gap."""
        self._last_in = 0.0
        self._last_out = 0.0
        self._test_req: tuple[str, float] | None = None
        self._logout_sent = False
        self._logged_on_once = False
        self.connections = 0
        """How many times a connection was made (tests: a reconnect happened)."""

    @property
    def logged_on(self) -> bool:
        return self._logged_on and self._writer is not None

    # --- the run loop ------------------------------------------------------------------

    async def run(self) -> None:
        delay = self.config.reconnect_min_ms / 1000
        while not self._closing:
            reason = "connection closed"
            try:
                reason = await self._connection()
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                reason = f"connection failed: {type(exc).__name__}: {exc}"
            except Exception as exc:  # never a dead session: log it, hang up, reconnect
                _log.exception("fix_session_failed", session=self.config.session_id)
                reason = f"session error: {type(exc).__name__}: {exc}"
            finally:
                self._drop_writer()
                self.handler.on_state(False, reason)
            if self._closing:
                break
            if self._logged_on_once:
                delay = self.config.reconnect_min_ms / 1000
                self._logged_on_once = False
            _log.info("fix_reconnect_wait", session=self.config.session_id, reason=reason, delay_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
            delay = min(delay * 2, self.config.reconnect_max_ms / 1000)

    async def close(self, *, logout: bool = True) -> None:
        """Log out (when ``logout`` and logged on) and stop reconnecting."""
        self._closing = True
        self._closed.set()
        if logout and self.logged_on and not self._logout_sent:
            with contextlib.suppress(NotSent, SendUnknown, OSError):
                self._logout_sent = True
                await self._send_admin("5", [(58, "closing")])
        self._drop_writer()

    def abort(self) -> None:
        """Drop the connection with no Logout, as a killed process would (the run loop reconnects)."""
        if self._writer is not None:
            transport = self._writer.transport
            transport.abort()

    async def _connection(self) -> str:
        config = self.config
        tls = None
        if config.tls is not None:
            tls = ssl.create_default_context(cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
            if config.tls.cert_file is not None:
                key = str(config.tls.key_file) if config.tls.key_file else None
                tls.load_cert_chain(str(config.tls.cert_file), key)
        hostname = None if config.tls is None else (config.tls.server_hostname or config.host)
        async with asyncio.timeout(config.connect_timeout_ms / 1000):
            reader, writer = await asyncio.open_connection(config.host, config.port, ssl=tls,
                                                           server_hostname=hostname)
        self._writer = writer
        self.connections += 1
        self._queued.clear()
        self._resend_to = None
        self._test_req = None
        self._logout_sent = False
        framer = Framer()
        try:
            await self._logon()
            loop = asyncio.get_running_loop()
            self._last_in = loop.time()
            logon_deadline = loop.time() + config.logon_timeout_ms / 1000
            while not self._logged_on:
                if not await self._read(reader, framer, logon_deadline - loop.time(), logon=True):
                    return "connection closed before the Logon answer"
            self._logged_on_once = True
            beat = asyncio.get_running_loop().create_task(self._heartbeats(), name="fix-heartbeat")
            try:
                while True:
                    if not await self._read(reader, framer, None):
                        return "connection closed by the desk"
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError, _Disconnect):
                    await beat
        except _Disconnect as exc:
            return str(exc)
        except TimeoutError:
            return "no Logon answer in time"

    async def _read(self, reader: asyncio.StreamReader, framer: Framer, timeout: float | None, *,
                    logon: bool = False) -> bool:
        if timeout is not None and timeout <= 0:
            raise TimeoutError
        async with asyncio.timeout(timeout):
            data = await reader.read(_READ_CHUNK)
        if not data:
            return False
        self._last_in = asyncio.get_running_loop().time()
        for item in framer.feed(data):
            if isinstance(item, Garbled):
                _log.warning("fix_garbled", session=self.config.session_id, reason=item.reason)
                self.handler.on_garbled(item.reason, item.raw)
                continue
            if logon and not self._logged_on and item.msg_type != "A":
                raise _Disconnect(f"first message was {item.msg_type!r}, not a Logon")
            await self._inbound(item)
        return True

    # --- inbound -----------------------------------------------------------------------

    async def _inbound(self, msg: FixMessage) -> None:
        config = self.config
        seq_text = msg.get(34)
        seq = int(seq_text) if seq_text is not None and seq_text.isdigit() else 0
        if not self._logged_on:  # the desk's Logon answer: anything wrong and we hang up
            problem = self._logon_problem(msg, seq_text)
            if problem:
                raise _Disconnect(f"unacceptable Logon answer: {problem}")
        if msg.get(8) != BEGIN_STRING:
            await self._logout_and_drop("Incorrect BeginString")
        if seq_text is None or not seq_text.isdigit():
            await self._logout_and_drop("MsgSeqNum(34) missing or not a number")
        missing = next((tag for tag in (49, 56, 52) if msg.get(tag) is None), 0)
        if missing:
            await self._reject(seq, msg.msg_type, 1, "Required tag missing", ref_tag=missing)
            if seq == self.numbers.next_in:
                await self._advance(seq + 1)
            return
        if msg.get(49) != config.target_comp_id or msg.get(56) != config.sender_comp_id:
            await self._reject(seq, msg.msg_type, 9, "CompID problem")
            await self._logout_and_drop(f"CompIDs {msg.get(49)}->{msg.get(56)} are not this session's",
                                        say=False)
        problem, reason, tag = self._sending_time_problem(msg)
        if problem and reason == 1:  # a PossDup without OrigSendingTime: refused, the session goes on
            await self._reject(seq, msg.msg_type, 1, problem, ref_tag=tag)
            if seq == self.numbers.next_in:
                await self._advance(seq + 1)
            return
        if problem:
            await self._reject(seq, msg.msg_type, 10, problem)
            await self._logout_and_drop(problem, say=False)
        msg_type = msg.msg_type
        if msg_type == "A" and not self._logged_on and msg.get(141) == "Y":
            self.numbers.next_in = 1
        if msg_type == "A" and self._logged_on and msg.get(141) == "Y":
            await self._reset_now(seq)
            return
        if msg_type == "4" and msg.get(123) != "Y":  # SequenceReset-Reset: no sequence check
            await self._sequence_reset(msg, seq)
            return
        expected = self.numbers.next_in
        if msg_type == "2" and seq != expected:  # answered whatever its number, then counted as usual
            await self._gap_fill(msg)
            if seq < expected:
                return
        if seq > expected:
            if msg_type == "5":
                await self._on_logout(msg)
            if msg_type == "A":
                await self._logged_on_now(msg)
            self._queued[seq] = msg
            if self._resend_to is None:
                self._resend_to = seq
                _log.info("fix_gap", session=config.session_id, expected=expected, received=seq)
                await self._send_admin("2", [(7, str(expected)), (16, "0")])
            return
        if seq < expected:
            if msg_type == "5":  # a Logout is answered whatever its number
                await self._on_logout(msg)
            if msg.poss_dup:
                _log.debug("fix_duplicate_ignored", session=config.session_id, seq=seq, msg_type=msg_type)
                return
            await self._logout_and_drop(f"MsgSeqNum too low, expecting {expected} but received {seq}")
        await self._handle(msg, seq)
        while self.numbers.next_in in self._queued:
            queued = self._queued.pop(self.numbers.next_in)
            await self._handle(queued, self.numbers.next_in)
        if self._resend_to is not None and self.numbers.next_in > self._resend_to:
            self._resend_to = None

    async def _handle(self, msg: FixMessage, seq: int) -> None:
        msg_type = msg.msg_type
        if msg_type == "4":  # GapFill
            new_seq = msg.get(36) or ""
            if not new_seq.isdigit() or int(new_seq) <= seq:
                await self._reject(seq, "4", 5, "Value is incorrect (out of range) for this tag")
                await self._advance(seq + 1)
                return
            await self._advance(int(new_seq))
            return
        if msg_type == "A":
            if not self._logged_on:
                await self._logged_on_now(msg)
        elif msg_type == "0":
            if self._test_req is not None and msg.get(112) == self._test_req[0]:
                self._test_req = None
        elif msg_type == "1":
            await self._send_admin("0", [(112, msg.get(112) or "")] if msg.get(112) else [])
        elif msg_type == "2":
            await self._gap_fill(msg)
        elif msg_type == "3":
            await self.handler.on_session_reject(msg)
        elif msg_type == "5":
            await self._advance(seq + 1)
            await self._on_logout(msg)
        elif msg_type not in MSG_TYPES:
            await self._reject(seq, msg_type, 11, "Invalid MsgType")
        elif msg_type not in self.handler.application_types:
            await self._send_admin("j", [(45, str(seq)), (372, msg_type), (380, "3"),
                                         (58, "Unsupported Message Type")])
        else:
            await self.handler.on_application(msg)
        await self._advance(seq + 1)

    async def _logged_on_now(self, msg: FixMessage) -> None:
        if self._logged_on:
            return
        beat = msg.get(108)
        if beat != str(self.config.heartbeat_s):
            _log.warning("fix_heartbeat_differs", session=self.config.session_id, desk=beat)
        self._logged_on = True
        _log.info("fix_logged_on", session=self.config.session_id, next_out=self.numbers.next_out,
                  next_in=self.numbers.next_in)
        self.handler.on_state(True, "logged on")

    async def _on_logout(self, msg: FixMessage) -> None:
        text = msg.get(58) or ""
        if not self._logout_sent:
            with contextlib.suppress(NotSent, SendUnknown):
                self._logout_sent = True
                await self._send_admin("5", [])
        raise _Disconnect(f"logged out by the desk{': ' + text if text else ''}")

    async def _reset_now(self, seq: int) -> None:
        """The desk resets the session while logged on (Logon with ResetSeqNumFlag): both
        numbers start again, and our Logon with ResetSeqNumFlag answers it."""
        _log.warning("fix_session_reset_by_desk", session=self.config.session_id,
                     next_out=self.numbers.next_out, next_in=self.numbers.next_in)
        async with self._send_lock:
            self.numbers = SeqNumbers(1, seq + 1)
            self._queued.clear()
            self._resend_to = None
            await asyncio.to_thread(self.store.save, SeqNumbers(1, seq + 1), reset=True)
        await self._send("A", [(98, "0"), (108, str(self.config.heartbeat_s)), (141, "Y")])

    async def _sequence_reset(self, msg: FixMessage, seq: int) -> None:
        new_seq = msg.get(36) or ""
        if not new_seq.isdigit() or int(new_seq) < self.numbers.next_in:
            await self._reject(seq, "4", 5, "Value is incorrect (out of range) for this tag")
            return
        self._queued = {s: m for s, m in self._queued.items() if s >= int(new_seq)}
        await self._advance(int(new_seq))
        if self._resend_to is not None and self.numbers.next_in > self._resend_to:
            self._resend_to = None

    async def _gap_fill(self, msg: FixMessage) -> None:
        begin = msg.get(7) or ""
        if not begin.isdigit() or int(begin) < 1:
            await self._reject(int(msg.get(34) or 0), "2", 5, f"BeginSeqNo(7) {begin!r}")
            return
        first = int(begin)
        async with self._send_lock:
            new_seq = self.numbers.next_out
            if first >= new_seq:
                return
            now = utc_now()
            data = encode("4", self._header(first, now, poss_dup=True), [(123, "Y"), (36, str(new_seq))])
            self._write(data)
        _log.info("fix_gap_filled", session=self.config.session_id, begin=first, new_seq_no=new_seq)

    async def _advance(self, next_in: int) -> None:
        if next_in > self.numbers.next_in:
            self.numbers.next_in = next_in
            await asyncio.to_thread(self.store.save, SeqNumbers(self.numbers.next_out, next_in))

    def _sending_time_problem(self, msg: FixMessage) -> tuple[str, int, int]:
        """A SendingTime (or, on a PossDup, OrigSendingTime) problem: its text, the
        SessionRejectReason (1 required tag missing, 10 accuracy) and the tag; "" if none."""
        text = msg.get(52)
        if text is None:
            return "Required tag missing", 1, 52
        try:
            sent = parse_fix_time(text, "SendingTime", 52)
        except ValidationError:
            return "SendingTime accuracy problem", 10, 52
        if abs(utc_now() - sent) > SENDING_TIME_TOLERANCE:
            return "SendingTime accuracy problem", 10, 52
        if msg.poss_dup and msg.msg_type != "4":
            orig = msg.get(122)
            if orig is None:
                return "Required tag missing", 1, 122
            try:
                if parse_fix_time(orig, "OrigSendingTime", 122) > sent:
                    return "SendingTime accuracy problem", 10, 122
            except ValidationError:
                return "SendingTime accuracy problem", 10, 122
        return "", 0, 0

    def _logon_problem(self, msg: FixMessage, seq_text: str | None) -> str:
        config = self.config
        if msg.get(8) != BEGIN_STRING:
            return f"BeginString {msg.get(8)!r}"
        if msg.get(49) != config.target_comp_id or msg.get(56) != config.sender_comp_id:
            return f"CompIDs {msg.get(49)}->{msg.get(56)}"
        if seq_text is None or not seq_text.isdigit():
            return "MsgSeqNum(34) missing"
        problem, _, _ = self._sending_time_problem(msg)
        return problem

    # --- outbound ----------------------------------------------------------------------

    async def send(self, msg_type: str, body: Pairs) -> int:
        """Send an application message; returns its MsgSeqNum (see ``NotSent``/``SendUnknown``)."""
        if not self.logged_on:
            raise NotSent("not logged on")
        return await self._send(msg_type, body)

    async def _logon(self) -> None:
        config = self.config
        body: list[tuple[int, str]] = [(98, "0"), (108, str(config.heartbeat_s))]
        if config.reset_on_logon:
            self.numbers = SeqNumbers(1, 1)
            await asyncio.to_thread(self.store.save, SeqNumbers(1, 1), reset=True)
            body.append((141, "Y"))
        for env, tag in ((config.username_env, 553), (config.password_env, 554)):
            if env is not None:
                body.append((tag, self._environ[env]))
        await self._send("A", body)

    async def _send_admin(self, msg_type: str, body: Pairs) -> int:
        return await self._send(msg_type, body)

    async def _send(self, msg_type: str, body: Pairs) -> int:
        async with self._send_lock:
            if self._writer is None:
                raise NotSent("no connection")
            seq = self.numbers.next_out
            data = encode(msg_type, self._header(seq, utc_now()), body)
            try:
                await asyncio.to_thread(self.store.save, SeqNumbers(seq + 1, self.numbers.next_in))
            except OSError as exc:
                raise NotSent(f"could not store MsgSeqNum {seq}: {exc}") from exc
            self.numbers.next_out = seq + 1
            self._write(data)
            writer = self._writer
        try:
            await writer.drain()
        except (OSError, RuntimeError) as exc:
            raise SendUnknown(f"connection failed while sending MsgSeqNum {seq}: {exc}") from exc
        return seq

    def _header(self, seq: int, now: datetime, *, poss_dup: bool = False) -> list[tuple[int, str]]:
        header = [(49, self.config.sender_comp_id), (56, self.config.target_comp_id), (34, str(seq))]
        if poss_dup:
            header.append((43, "Y"))
        header.append((52, fix_time(now)))
        if poss_dup:
            header.append((122, fix_time(now)))
        return header

    def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise NotSent("no connection")
        self._writer.write(data)
        self._last_out = asyncio.get_running_loop().time()

    async def _reject(self, ref_seq: int, ref_type: str, reason: int, text: str, *, ref_tag: int = 0) -> None:
        body = [(45, str(ref_seq))]
        if ref_tag:
            body.append((371, str(ref_tag)))
        body += [(372, ref_type), (373, str(reason)), (58, text[:200])]
        with contextlib.suppress(NotSent, SendUnknown):
            await self._send_admin("3", body)

    async def _logout_and_drop(self, text: str, *, say: bool = True) -> None:
        """Logout (with ``text`` when ``say``; after a Reject that said it, without) and hang up."""
        _log.warning("fix_logout", session=self.config.session_id, reason=text)
        if not self._logout_sent:
            self._logout_sent = True
            with contextlib.suppress(NotSent, SendUnknown):
                await self._send_admin("5", [(58, text[:200])] if say else [])
        raise _Disconnect(text)

    async def _heartbeats(self) -> None:
        try:
            await self._beat()
        except (NotSent, SendUnknown) as exc:
            _log.warning("fix_heartbeat_failed", session=self.config.session_id, error=str(exc))
            self.abort()

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.heartbeat_s
        while True:
            await asyncio.sleep(min(1.0, interval / 4))
            now = loop.time()
            if self._test_req is not None and now - self._test_req[1] >= interval:
                self.abort()  # the TestRequest went unanswered for a HeartBtInt
                return
            if now - self._last_out >= interval:
                await self._send_admin("0", [])
            if self._test_req is None and now - self._last_in >= interval * 1.2:
                test_id = "TEST"
                self._test_req = (test_id, now)
                await self._send_admin("1", [(112, test_id)])

    def _drop_writer(self) -> None:
        self._logged_on = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
