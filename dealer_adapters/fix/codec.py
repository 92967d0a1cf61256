"""FIX 4.4 tag=value messages: framing, checksums, fields, and FIX values to domain values.

Encoding goes through ``simplefix`` (it places BeginString, BodyLength, MsgType and CheckSum).
Decoding frames the byte stream here, so a message whose ``BodyLength(9)`` or
``CheckSum(10)`` is wrong is recognised as garbled (and ignored, as FIX requires: it
consumes no sequence number), then ``simplefix`` splits the frame into fields.

Values: a FIX ``float``/``Price``/``Qty`` field's text goes straight to ``Decimal`` through
the domain's bounded parser (``ENTRY_BOUNDS``); FIX forbids exponents, so does ``fix_decimal``.
Timestamps are ``UTCTimestamp`` (``YYYYMMDD-HH:MM:SS`` with 0, 3 or 6 decimals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import simplefix

from rfq_engine.domain import ValidationError, parse_decimal
from rfq_engine.domain.values import ENTRY_BOUNDS

__all__ = [
    "BEGIN_STRING",
    "MAX_BODY",
    "MSG_TYPES",
    "FixMessage",
    "Framer",
    "Garbled",
    "encode",
    "fix_decimal",
    "fix_time",
    "parse_fix_time",
]

BEGIN_STRING = "FIX.4.4"
SOH = b"\x01"
MAX_BODY = 65_536
"""A BodyLength above this is garbled (no RFQ message comes near it)."""
_MSG_TYPES_TEXT = ("0 1 2 3 4 5 6 7 8 9 A AA AB AC AD AE AF AG AH AI AJ AK AL AM AN AO AP AQ AR AS AT AU AV "
                   "AW AX AY AZ B BA BB BC BD BE BF BG BH C D E F G H J K L M N P Q R S T V W X Y Z "
                   "a b c d e f g h i j k l m n o p q r s t u v w x y z")
MSG_TYPES = frozenset(_MSG_TYPES_TEXT.split(" "))
"""Every MsgType(35) FIX 4.4 defines."""
_BEGIN = re.compile(rb"^8=FIX[A-Za-z0-9.]{1,12}\x019=")
_FLOAT = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_TIME = re.compile(r"^(\d{8})-(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}|\d{6}))?$")

Pairs = Sequence[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class FixMessage:
    """One decoded message: its fields in order, and its bytes as received (for the audit log)."""

    fields: tuple[tuple[int, str], ...]
    raw: bytes = b""

    @property
    def msg_type(self) -> str:
        return self.get(35) or ""

    def get(self, tag: int) -> str | None:
        """The first value of ``tag``, or None."""
        for t, value in self.fields:
            if t == tag:
                return value
        return None

    def require(self, tag: int, name: str) -> str:
        value = self.get(tag)
        if value is None or value == "":
            raise ValidationError(f"{name}({tag})", "missing")
        return value

    def groups(self, count_tag: int, first_tag: int) -> list[dict[int, str]]:
        """The instances of the repeating group counted by ``count_tag`` whose first field is
        ``first_tag`` (each a dict of its fields); ``ValidationError`` when the count is wrong."""
        out: list[dict[int, str]] = []
        count: int | None = None
        for t, value in self.fields:
            if t == count_tag:
                if not value.isdigit():
                    raise ValidationError(f"{count_tag}", f"group count must be a number, got {value!r}")
                count = int(value)
                continue
            if count is None:
                continue
            if t == first_tag:
                out.append({})
            if out and t not in out[-1]:
                out[-1][t] = value
        if count is not None and count != len(out):
            raise ValidationError(f"{count_tag}", f"says {count} group(s), {len(out)} found")
        return out

    @property
    def poss_dup(self) -> bool:
        return self.get(43) == "Y"

    def text(self) -> str:
        """The message with ``|`` for SOH (logs, the audit log's raw)."""
        return "|".join(f"{t}={v}" for t, v in self.fields)


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes that are not a well-formed FIX 4.4 message, and why (ignored by the session)."""

    reason: str
    raw: bytes


def encode(msg_type: str, header: Pairs, body: Pairs) -> bytes:
    """A complete message: BeginString, BodyLength and CheckSum computed by ``simplefix``."""
    message = simplefix.FixMessage()
    message.append_pair(8, BEGIN_STRING, header=True)
    message.append_pair(35, msg_type, header=True)
    for tag, value in header:
        _check_value(tag, value)
        message.append_pair(tag, value, header=True)
    for tag, value in body:
        _check_value(tag, value)
        message.append_pair(tag, value)
    data: bytes = message.encode()
    return data


def _check_value(tag: int, value: str) -> None:
    if "\x01" in value or value == "":
        raise ValueError(f"field {tag}: a FIX value is non-empty and holds no SOH, got {value!r}")


class Framer:
    """Cuts a byte stream into messages; feed it what the socket gives."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> Iterator[FixMessage | Garbled]:
        self._buf += data
        while self._buf:
            item = self._next()
            if item is None:
                return
            yield item

    def _next(self) -> FixMessage | Garbled | None:
        buf = self._buf
        if not b"8=FIX".startswith(buf[:5]):
            return self._skip("does not start with BeginString(8)", at=0)
        start = _BEGIN.match(buf)
        if start is None:
            soh = buf.find(SOH)
            after = b"" if soh < 0 else buf[soh + 1: soh + 3]
            if len(buf) > 24 or (soh >= 0 and not b"9=".startswith(after)):
                return self._skip("BeginString(8) then BodyLength(9) do not start it")
            return None
        head = start.end()
        end = buf.find(SOH, head)
        if end < 0:
            if len(buf) > head + 8:
                return self._skip("BodyLength(9) is not a number")
            return None
        length_text = buf[head:end]
        if not length_text.isdigit() or int(length_text) > MAX_BODY:
            return self._skip(f"BodyLength(9) {length_text!r} is not a length")
        body_end = end + 1 + int(length_text)
        total = body_end + 7
        if len(buf) < total:
            return None
        trailer = buf[body_end:total]
        if not (trailer.startswith(b"10=") and trailer.endswith(SOH) and trailer[3:6].isdigit()):
            return self._cut("BodyLength(9) does not end where CheckSum(10) starts", total)
        if sum(buf[:body_end]) % 256 != int(trailer[3:6]):
            return self._cut(f"CheckSum(10) {trailer[3:6].decode()} is wrong", total)
        frame, self._buf = buf[:total], buf[total:]
        return decode_frame(frame)

    def _cut(self, reason: str, total: int) -> Garbled:
        """Drop the ``total`` bytes its BodyLength claims (what they swallowed is lost with them)."""
        garbled, self._buf = self._buf[:total], self._buf[total:]
        return Garbled(reason, garbled)

    def _skip(self, reason: str, at: int = 1) -> Garbled:
        cut = self._buf.find(b"8=FIX", max(at, 1))
        garbled = self._buf if cut < 0 else self._buf[:cut]
        self._buf = b"" if cut < 0 else self._buf[cut:]
        return Garbled(reason, garbled)


def decode_frame(frame: bytes) -> FixMessage | Garbled:
    """One framed message (checksum already checked) as its fields."""
    parser = simplefix.FixParser()
    parser.append_buffer(frame)
    try:
        parsed = parser.get_message()
    except Exception as exc:  # simplefix raises its own errors for a bad tag
        return Garbled(f"unreadable fields: {exc}", frame)
    if parsed is None:
        return Garbled("unreadable fields", frame)
    fields: list[tuple[int, str]] = []
    try:
        for tag, value in parsed.pairs:
            fields.append((int(tag), bytes(value).decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        return Garbled(f"unreadable field: {exc}", frame)
    if len(fields) < 4 or fields[2][0] != 35:
        return Garbled("MsgType(35) is not the third field", frame)
    return FixMessage(tuple(fields), frame)


def fix_decimal(text: str | None, name: str, tag: int) -> Decimal:
    """A FIX decimal field (``Price``, ``Qty``...) as a bounded ``Decimal``; raises
    ``ValidationError`` naming the field for a missing, exponent or unbounded value."""
    field = f"{name}({tag})"
    if text is None or text == "":
        raise ValidationError(field, "missing")
    if not _FLOAT.match(text):
        raise ValidationError(field, f"not a FIX decimal: {text[:40]!r}")
    return parse_decimal(text, field, ENTRY_BOUNDS)


def fix_time(moment: datetime, digits: int = 3) -> str:
    """A ``UTCTimestamp`` with milliseconds (the FIX 4.4 precision) or microseconds."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y%m%d-%H:%M:%S")
    return f"{text}.{moment.microsecond:06d}"[: len(text) + 1 + digits] if digits else text


def parse_fix_time(text: str | None, name: str, tag: int) -> datetime:
    field = f"{name}({tag})"
    if text is None:
        raise ValidationError(field, "missing")
    match = _TIME.match(text)
    if match is None:
        raise ValidationError(field, f"not a UTCTimestamp: {text[:40]!r}")
    day, hh, mm, ss, frac = match.groups()
    try:
        return datetime(int(day[:4]), int(day[4:6]), int(day[6:]), int(hh), int(mm), int(ss),
                        int((frac or "0").ljust(6, "0")), tzinfo=UTC)
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None


def pairs_text(pairs: Iterable[tuple[int, str]]) -> str:
    return "|".join(f"{t}={v}" for t, v in pairs)
