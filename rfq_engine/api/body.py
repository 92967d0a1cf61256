"""Reading a JSON request body that may be hostile, and the query parameters that are numbers.

Every refusal is a 4xx in the API's error format, never a 500:
- 400: not UTF-8, not JSON (``NaN`` and ``Infinity`` are not JSON), a number of more than
  ``MAX_NUMBER_DIGITS`` digits, nesting deeper than ``MAX_DEPTH``, a string with a lone
  surrogate (``"\\ud800"`` is JSON but not text: no UTF-8 can hold it), or not an object;
- 422 naming the field: a key given twice, or (``check_fields``) a key the endpoint does
  not have.

The depth bound is checked while parsing too: a body nested 200,000 levels deep stops the
parser (a ``RecursionError``), and is answered 400 like any other.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from aiohttp import web

from rfq_engine.domain import ValidationError

__all__ = ["MAX_DEPTH", "MAX_NUMBER_DIGITS", "bad_request", "is_text", "parse_json", "query_int",
           "read_json"]

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects in a body (an RFQ needs 4)."""
MAX_NUMBER_DIGITS = 100
"""Longest JSON number (a decimal's own bound is tighter: ``ENTRY_BOUNDS``)."""
_WHOLE = re.compile(r"[0-9]{1,19}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def bad_request(reason: str) -> NoReturn:
    raise web.HTTPBadRequest(text=json.dumps({"error": "bad_request", "reason": reason},
                                             separators=(",", ":")),
                             content_type="application/json")


class _Refused(Exception):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def _number(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _Refused(f"a JSON number has {len(text)} digits; at most {MAX_NUMBER_DIGITS}")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _Refused(f"a JSON number has {len(text)} characters; at most {MAX_NUMBER_DIGITS}")
    return float(text)  # refused later by every decimal field: decimals travel as strings


def _constant(text: str) -> Any:
    raise _Refused(f"{text} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused("is given twice", key[:64])
        out[key] = value
    return out


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode text: no lone surrogate, which JSON can carry
    (``"\\ud800"``) and aiohttp makes of a header's bytes that are not UTF-8, but no UTF-8
    can hold (the store, and the hash of every audit event, encode UTF-8)."""
    return _SURROGATE.search(value) is None


def _problem(data: Any) -> str | None:
    """Why the decoded body is refused: nested too deep, or a string that is not text (it
    could never be written to the audit log, whose hash covers the UTF-8 of each event)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                return "body has a lone surrogate (\\ud800-\\udfff): not Unicode text"
            continue
        if isinstance(value, dict):
            if not all(is_text(key) for key in value):
                return "body has a key with a lone surrogate (\\ud800-\\udfff): not Unicode text"
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            return f"body is nested deeper than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def parse_json(raw: bytes) -> Any:
    """The decoded body, or an HTTP 400/422 error."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        bad_request("body is not valid UTF-8")
    try:
        data = json.loads(text, parse_int=_number, parse_float=_float,
                          parse_constant=_constant, object_pairs_hook=_object)
    except RecursionError:
        bad_request(f"body is nested deeper than {MAX_DEPTH} levels")
    except _Refused as exc:
        if exc.field is not None:
            raise ValidationError(exc.field, exc.reason) from None
        bad_request(exc.reason)
    except ValueError as exc:  # JSONDecodeError
        bad_request(f"body is not valid JSON: {str(exc)[:200]}")
    problem = _problem(data)
    if problem is not None:
        bad_request(problem)
    return data


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. With ``optional`` an absent or empty body is ``{}``."""
    raw = await request.read() if request.can_read_body else b""
    if optional and not raw.strip():
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        bad_request("body must be a JSON object")
    return data


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter in ``low..high`` (ASCII digits only), or a 422."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _WHOLE.fullmatch(raw):
        raise ValidationError(name, "must be a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError(name, f"must be {low}..{high}")
    return value
