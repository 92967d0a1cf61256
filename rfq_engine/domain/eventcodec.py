"""The payload codec of the typed audit events (``domain.events``): one rule per field type.

A payload is the JSON object stored in the hash-chained log. Each event class is a frozen
dataclass; its fields become the payload's keys, in declaration order:

| field type | in the payload |
| --- | --- |
| ``Decimal`` | a decimal string (``decimal_str``), never a JSON number |
| ``datetime`` | a UTC ``...Z`` string with microseconds (``format_ts``) |
| ``date`` | ``YYYY-MM-DD`` |
| ``str``, ``int``, ``bool`` | themselves |
| ``tuple[str, ...]`` | a list of strings |
| anything else (``Json``) | the JSON value as it is (nested records: a spec, a ranking) |

Field metadata: ``key`` names a payload key that is not a Python name (``from``);
``omit_none`` leaves the key out while the value is None (keys added in later versions);
``rest`` (one ``Json`` field per class) collects the keys no other field names, so an event
whose writers add context keep them, and decoding keeps what it does not know.

Versions: a class's ``VERSION`` is written as ``"v"`` only from version 2 on, so every
payload written before versioning reads as version 1, byte for byte as it was written.
Decoding is lenient about what old writers left out (a field with a default takes it) and
strict about types (a decimal must be a decimal string).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

from rfq_engine.domain.errors import RfqError, StoreFault
from rfq_engine.domain.values import decimal_str, format_ts, parse_date, parse_decimal, parse_ts

__all__ = [
    "OMIT_NONE",
    "REST",
    "Event",
    "EventDecodeError",
    "FieldSpec",
    "Json",
    "decode_payload",
    "encode_payload",
    "field_specs",
    "key",
]

Json = Any
"""A JSON value kept as it is (a nested record)."""


class Event(Protocol):
    """What every typed audit event class has."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]


class EventDecodeError(StoreFault):
    """A stored payload does not fit its event type (a missing key, a wrong type)."""

    def __init__(self, type_: str, reason: str) -> None:
        super().__init__(f"{type_}: {reason}")
        self.type = type_
        self.reason = reason


OMIT_NONE: Mapping[str, Any] = {"omit_none": True}
"""Field metadata: an optional key, left out of the payload while None."""
REST: Mapping[str, Any] = {"rest": True}
"""Field metadata: the payload keys no other field names (written back as they are)."""


def key(name: str) -> Mapping[str, Any]:
    """Field metadata: the field is stored under payload key ``name``."""
    return {"key": name}


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    key: str
    kind: str  # dec | ts | date | str | int | bool | strs | json
    optional: bool
    omit_none: bool
    rest: bool
    required: bool
    doc_type: str


_SPECS: dict[type, tuple[FieldSpec, ...]] = {}


def _kind(hint: Any) -> tuple[str, bool, str]:
    """(kind, optional, readable type) of a resolved annotation."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        kind, _, text = _kind(inner[0]) if len(inner) == 1 else ("json", True, "json")
        return kind, True, f"{text} or null"
    simple = {Decimal: ("dec", "decimal string"), datetime: ("ts", "UTC timestamp"),
              date: ("date", "date"), str: ("str", "string"), bool: ("bool", "boolean"),
              int: ("int", "integer")}
    if hint in simple:
        kind, text = simple[hint]
        return kind, False, text
    if origin is tuple and args and args[0] is str:
        return "strs", False, "[string]"
    return "json", False, "json"


def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """The codec's view of ``cls`` (computed once per class)."""
    cached = _SPECS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        kind, optional, text = _kind(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        specs.append(FieldSpec(f.name, f.metadata.get("key", f.name), kind, optional,
                               bool(f.metadata.get("omit_none")), bool(f.metadata.get("rest")),
                               required, text))
    _SPECS[cls] = tuple(specs)
    return _SPECS[cls]


def _encode_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "dec":
        return decimal_str(value)
    if kind == "ts":
        return format_ts(value)
    if kind == "date":
        return value.isoformat()
    if kind == "strs":
        return list(value)
    return value


def encode_payload(event: Any) -> dict[str, Any]:
    """The JSON payload of a typed event (see the module doc)."""
    payload: dict[str, Any] = {}
    extra: Mapping[str, Any] = {}
    for spec in field_specs(type(event)):
        value = getattr(event, spec.name)
        if spec.rest:
            extra = value
            continue
        if spec.omit_none and value is None:
            continue
        payload[spec.key] = _encode_value(spec.kind, value)
    for k, v in extra.items():
        payload.setdefault(k, v)
    if event.VERSION > 1:
        payload["v"] = event.VERSION
    return payload


def _decode_value(type_: str, spec: FieldSpec, value: Any) -> Any:
    if value is None:
        if spec.optional or spec.kind == "json":
            return None
        raise EventDecodeError(type_, f"{spec.key} is null")
    try:
        if spec.kind == "dec":
            return parse_decimal(value, spec.key)
        if spec.kind == "ts":
            return parse_ts(value, spec.key)
        if spec.kind == "date":
            return parse_date(value, spec.key)
    except RfqError as exc:
        raise EventDecodeError(type_, str(exc)) from None
    if spec.kind == "str":
        if not isinstance(value, str):
            raise EventDecodeError(type_, f"{spec.key} must be a string")
        return value
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise EventDecodeError(type_, f"{spec.key} must be a boolean")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventDecodeError(type_, f"{spec.key} must be an integer")
        return value
    if spec.kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise EventDecodeError(type_, f"{spec.key} must be a list of strings")
        return tuple(value)
    return value


E = TypeVar("E")


def decode_payload(cls: type[E], payload: Mapping[str, Any]) -> E:
    """The typed event ``cls`` from a stored payload (lenient with keys old writers omitted)."""
    type_ = str(getattr(cls, "TYPE", cls.__name__))
    specs = field_specs(cls)
    known = {s.key for s in specs if not s.rest} | {"v"}
    kwargs: dict[str, Any] = {}
    for spec in specs:
        if spec.rest:
            kwargs[spec.name] = {k: v for k, v in payload.items() if k not in known}
            continue
        if spec.key not in payload:
            if spec.required:
                raise EventDecodeError(type_, f"missing {spec.key}")
            continue
        kwargs[spec.name] = _decode_value(type_, spec, payload[spec.key])
    return cls(**kwargs)
