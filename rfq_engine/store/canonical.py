"""Canonical JSON of audit payloads: keys sorted, no whitespace, no floats.

``encode_payload`` gives the store its own JSON-native copy of a payload and the text the
chain hashes. The encoder and decoder are built once: json.dumps/json.loads with options
construct new ones on every call, a quarter of the cost for small payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from rfq_engine.domain import to_jsonable
from rfq_engine.domain.values import decimal_str

__all__ = ["encode_payload"]


def _refuse_float(text: str) -> Any:
    raise TypeError(f"floats are not allowed in audit payloads ({text}); use Decimal or str")


def _jsonable(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted


_encode: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
).encode
_decode: Final = json.JSONDecoder(
    parse_float=_refuse_float, parse_constant=_refuse_float  # 1.5, NaN, Infinity
).decode
# For a payload already made of plain JSON values (see ``_native``): no ``default`` hook.
_encode_native: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode


class _Unusual(Exception):
    """A value ``_native`` leaves to the general path (encode, then parse back)."""


def _native(value: Any) -> Any:
    """A fresh copy of ``value`` as ``_decode(_encode(value))`` would return it, for the
    common types only (exact dict with str keys, list, tuple, str, int, bool, None,
    Decimal); TypeError on a float, ``_Unusual`` for anything else. Cheaper than parsing
    the encoded text back, and encoding the copy gives the same text as encoding ``value``."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _Unusual
            out[k] = _native(v)
        return out
    if t is list or t is tuple:
        return [_native(v) for v in value]
    if t is Decimal:
        return decimal_str(value)
    if t is float:
        raise TypeError(f"floats are not allowed in audit payloads ({value!r}); use Decimal or str")
    raise _Unusual


def encode_payload(payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(canonical JSON text, a fresh JSON-native dict of it). TypeError for a float or a
    value without an exact canonical JSON form: by a copying walk for the common types,
    else by encoding and parsing the text back."""
    try:
        parsed: dict[str, Any] = _native(payload if type(payload) is dict else dict(payload))
        return _encode_native(parsed), parsed
    except (_Unusual, RecursionError):
        text = _encode(payload if type(payload) is dict else dict(payload))
        return text, _decode(text)
