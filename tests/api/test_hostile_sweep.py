"""A hostile sweep of every endpoint (issue 14): the server's own OpenAPI document says
which paths, methods, parameters and body schemas there are; each operation then gets a
corpus of hostile input:

- **bodies**, whole: nested 200k deep, a 5,000-digit number, NaN, invalid UTF-8, a lone
  surrogate, a BOM, not an object, 2 MiB over the limit, 1 MiB under it;
- **bodies, field by field**: a valid sample body mutated at every property the schema
  names (nested ones too: legs, instruments, the hedge): ``"1e999999"``, 5,000 digits, a
  huge JSON number, wrong types, huge strings, NUL and lone surrogates, arrays 30 deep,
  an unknown key at every level, each required key missing;
- **path parameters**: unknown ids, traversal, ``%00``, invalid UTF-8, 5,000 characters;
- **query parameters**: each declared one with out-of-range, malformed, invalid UTF-8 and
  huge values, repeated, and unknown ones;
- **bytes no client library sends**: headers that are not UTF-8 (``Idempotency-Key``,
  ``X-Forwarded-For``), raw bytes in the request target;
- **authentication**: none, malformed, unknown and huge tokens, ``?token=`` where it does
  not count, and every role's token on every operation; methods the path does not have.

It asserts, for every answer: never a 5xx; a 4xx is the API's JSON error format
(``{"error", "reason", "field"?}``), a request the HTTP parser refuses before routing
included; without a valid token a 401 (but for those). Afterwards the server
is healthy (``/healthz`` 200) and the audit chain verifies (``store.verify()``).
Every failure is collected, so one run reports them all.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from rfq_engine.api.app import create_web_app
from rfq_engine.config import ApiConfig, parse_config
from rfq_engine.wiring import open_app
from tests.api.conftest import DEALERS, EXPIRY, TOKENS, Api, auth, config_data, rfq_body

ROLES = {"trader": "alice", "approver": "carol", "compliance": "dave", "admin": "erin"}
OPTION = {"kind": "option", "underlying": "BTC", "quote_ccy": "USD", "expiry": EXPIRY,
          "strike": "35000", "option_type": "put"}
# A valid body per operation that has one: the sweep mutates it field by field. An
# operation of the document without a sample here fails the sweep (give it one).
SAMPLES: dict[str, list[Any]] = {
    "POST /api/v1/rfqs": [
        rfq_body(legs=[{"instrument": OPTION, "side": "buy", "ratio": "1"},
                       {"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                       "expiry": EXPIRY}, "side": "sell", "ratio": "0.5"}],
                 direction="buy", limit_price="2000", tags=["sweep"], allow_partial=False,
                 hedge={"forecast_quantity": "100", "hedged_quantity": "10", "period": "2026-12"},
                 settlement="cash", close_policy="deadline", window_ms=100),
        rfq_body(legs=[{"instrument": {"kind": "hashprice_ndf", "underlying": "HASHPRICE",
                                       "quote_ccy": "USD", "start": EXPIRY, "days": 30},
                        "side": "sell"}], quantity="5", quantity_unit="PH/s/day",
                 direction="two_way", private_side="sell", window_ms=100)],
    "POST /api/v1/hedge/scenario": [
        {"strategy": "collar", "spot": "40000", "cost": "30000", "put": "35000",
         "call": "50000", "premium": "0", "quantity": "100", "prices": ["25000", "60000"],
         "future_price": "40100", "hedge_ratio": "1"},
        {"strategy": "ndf", "unit_price": "60", "hashrate_ph": "50", "days": 30,
         "settle_rates": ["45", "75"], "side": "short", "hedge_ratio": "1", "power_mw": "1.5",
         "power_price": "75", "opex_only": False}],
    "POST /api/v1/rfqs/{rfq_id}/cancel": [{"reason": "sweep"}],
    "POST /api/v1/rfqs/{rfq_id}/approve": [{}],
    "POST /api/v1/rfqs/{rfq_id}/refuse": [{"reason": "sweep"}],
    "POST /api/v1/rfqs/{rfq_id}/executions/{execution_id}/resolve": [
        {"executed": True, "evidence": "sweep", "dealer_trade_id": "T1", "quantity": "1",
         "price": "1"}],
    "POST /api/v1/admin/halt": [{"reason": "sweep"}],
    "POST /api/v1/admin/resume": [{}],
    "POST /api/v1/hedge/collateral": [{"dealer": "d1", "amounts": {"USD": "80000", "BTC": "0.5"},
                                       "note": "sweep"}],
    "POST /api/v1/hedge/production": [{"program": "monthly", "period": "2026-11", "quantity": "31.2",
                                       "note": "sweep"}],
}
NESTED: Any = json.loads("[" * 30 + "]" * 30)  # within the body depth bound of 32
VALUES: list[Any] = [  # what every field gets in turn
    "1e999999", "-1e999999", "1e-999999", "0E-999999", "9" * 5000, "1" * 29, "NaN",
    "-Infinity", "1e31", 10**99, 2**64, -(2**63) - 1, 1e308, -1, 0, 1.5, True, None, "",
    " ", "x" * 70_000, "\u0000", "\ud800", "sideways", "2026-02-30", "../../etc/passwd",
    "87.5%", "1e999999%", [], {}, ["1"] * 5000, NESTED, {"$gt": ""},
]
HUGE = 2 * 1024 * 1024
RAW_BODIES: list[tuple[str, bytes]] = [
    ("nested arrays 200k deep", b"[" * 200_000 + b"]" * 200_000),
    ("nested objects 100k deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("unterminated nesting", b"{" * 5000),
    ("5,000-digit integer", b'{"reason": ' + b"7" * 5000 + b"}"),
    ("invalid UTF-8", b'{"reason": "\xff\xfe"}'),
    ("a lone surrogate", b'{"reason": "\\ud800", "quantity": "\\udfff"}'),
    ("a byte-order mark", b'\xef\xbb\xbf{"reason": "x"}'),
    ("NaN", b'{"reason": NaN}'), ("Infinity", b'{"quantity": -Infinity}'),
    ("malformed", b'{"reason": '), ("empty", b""), ("null", b"null"), ("a list", b"[]"),
    ("a number", b"1"), ("a string", b'"x"'), ("a key twice", b'{"reason": "a", "reason": "b"}'),
    ("over the size limit", b'{"reason": "' + b"x" * HUGE + b'"}'),
    ("just under the size limit", b'{"reason": "' + b"x" * (1024 * 1024 - 64) + b'"}'),
    ("many keys", json.dumps({f"k{i}": i for i in range(50_000)}).encode()),
]
PATH_VALUES = ["00000000-0000-0000-0000-000000000000", "x", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
               "%00", "%ff%fe", "%C3%28", "a" * 5000, "%E2%98%83", "1%20OR%201=1", "%25", "-1",
               "%0d%0aSet-Cookie:%20x=1", "null", "%ed%a0%80"]
QUERY_VALUES = ["", "-1", "0", "1e999999", "99999999999999999999999", "9223372036854775808",
                "%ff", "%00", "x" * 10_000, "2026-01-01", "9999-12-31T23:59:59-23:59",
                "0001-01-01T00:00:00%2B23:59", "nan", "%EF%BC%91", "true", "[]", "..%2F",
                "%C3%28", "%ed%a0%80", "AAAA", "bWFsZm9ybWVk", "2026-01-01T00:00:00Z%00"]
AUTH_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("no token", {}), ("an empty bearer", {"Authorization": "Bearer "}),
    ("a wrong token", {"Authorization": "Bearer not-a-token-0123456789"}),
    ("basic auth", {"Authorization": "Basic YWxpY2U6c2VjcmV0"}),
    ("a 10k token", {"Authorization": "Bearer " + "t" * 10_000}),
    ("bearer twice", {"Authorization": f"Bearer {TOKENS['erin']} Bearer x"}),
    ("a token's hash", {"Authorization": "Bearer " + "0" * 64}),
]
PUBLIC = {"/api/v1/openapi.json"}
RAW: list[tuple[str, bytes]] = [  # (what, extra header lines): bytes no client library sends
    ("a Latin-1 Idempotency-Key", b"Idempotency-Key: \xe9t\xe9"),
    ("an Idempotency-Key of invalid UTF-8", b"Idempotency-Key: \xed\xa0\x80\xff"),
    ("a forwarded-for of invalid UTF-8", b"X-Forwarded-For: \xff\xfe, 10.0.0.1"),
    ("other headers of invalid UTF-8", b"X-Request-Id: \xff\r\nAccept: \xfe/\xff"),
]


# --- the schema walk ---------------------------------------------------------------------

def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def branch(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> dict[str, Any]:
    """The alternative of a oneOf/anyOf that ``value`` is an instance of (by its consts,
    enums and keys)."""
    schema = resolve(doc, schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [resolve(doc, s) for s in schema[key]]
            for option in options:
                if _fits(option, value):
                    return branch(doc, option, value)
            return branch(doc, options[0], value)
    return schema


def _fits(schema: dict[str, Any], value: Any) -> bool:
    if not isinstance(value, dict):
        return schema.get("type") != "object"
    props = schema.get("properties", {})
    for key, prop in props.items():
        if key in value and (("const" in prop and value[key] != prop["const"])
                             or ("enum" in prop and value[key] not in prop["enum"])):
            return False
    return schema.get("additionalProperties") is not False or set(value) <= set(props)


Path_ = tuple[str | int, ...]


def fields(doc: dict[str, Any], schema: dict[str, Any], value: Any,
           at: Path_ = ()) -> Iterator[tuple[Path_, bool]]:
    """Every property path of ``value``'s schema (and whether it is an object there)."""
    schema = branch(doc, schema, value)
    if isinstance(value, dict):
        yield at, True
        required = set(schema.get("required", []))
        for key, prop in schema.get("properties", {}).items():
            yield (*at, key), key in required
            if key in value:
                yield from (f for f in fields(doc, prop, value[key], (*at, key)) if f[0] != (*at, key))
    elif isinstance(value, list) and value and "items" in schema:
        for i, item in enumerate(value):
            yield from fields(doc, schema["items"], item, (*at, i))


def put(value: Any, at: Path_, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in at[:-1]:
        target = target[step]
    if new is _DELETE:
        del target[at[-1]]
    else:
        target[at[-1]] = new
    return out


_DELETE = object()


def mutations(doc: dict[str, Any], schema: dict[str, Any], sample: Any) -> Iterator[tuple[str, Any]]:
    seen: set[Path_] = set()
    for at, flag in fields(doc, schema, sample):
        if at in seen:
            continue
        seen.add(at)
        name = ".".join(map(str, at)) or "body"
        node = sample
        for step in at[:-1]:
            node = node[step]
        exists = not at or (isinstance(node, dict) and at[-1] in node)
        if not at or (exists and isinstance(_get(sample, at), dict)):  # an object: unknown keys
            yield f"{name}: an unknown key", _extend(sample, at, {"zz_unknown": "1"})
            yield f"{name}: a misspelt key", _extend(sample, at, {"resaon": "x", "sde": "buy"})
        if not at:
            continue
        for value in VALUES:
            yield f"{name} = {_short(value)}", put(sample, at, value)
        if exists and flag:
            yield f"{name}: missing", put(sample, at, _DELETE)


def _get(value: Any, at: Path_) -> Any:
    for step in at:
        value = value[step]
    return value


def _extend(sample: Any, at: Path_, extra: dict[str, Any]) -> Any:
    out = copy.deepcopy(sample)
    target = _get(out, at)
    target.update(extra)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}…({len(text)} chars)"


# --- the server --------------------------------------------------------------------------

@pytest.fixture
async def sweep_api(tmp_path: Path) -> AsyncIterator[Api]:
    data = config_data(tmp_path)
    data["mandates"]["treasury"]["underlyings"] = ["BTC", "HASHPRICE"]
    data["mandates"]["treasury"]["instruments"] = ["future", "option", "spot", "hashprice_ndf"]
    data["market"]["hashprice"] = "55"
    data["collateral"] = {"d1": {"initial_margin": {"USD": "0.35", "BTC": "0.18"},
                                 "eligible": {"USD": "0", "BTC": "0.2"}}}
    data["forecast"] = {"hashrate": "1 EH/s", "difficulty": "100000000000000"}
    data["programs"] = {"monthly": {"strategy": "future", "mandate": "treasury", "dealers": DEALERS,
                                    "hedge_ratio": "0.5", "schedule": "0 14 * * 5L"}}
    if "auth_failures" in ApiConfig.model_fields:  # the sweep fails on purpose, often
        data["api"]["auth_failures"] = 10_000
    config = parse_config(data)
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    try:
        yield Api(app, client)
    finally:
        await client.close()
        await app.close()


class Sweep:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.failures: list[str] = []
        self.count = 0
        self.statuses: dict[int, int] = {}

    async def send(self, what: str, method: str, url: str, *, body: bytes | None = None,
                   headers: dict[str, str] | None = None, needs_token: bool = True,
                   authed: bool = True) -> int:
        self.count += 1
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        try:
            resp = await self.api.client.request(method, URL(url, encoded=True), data=body,
                                                 headers=hdrs)
            status, text = resp.status, await resp.text(errors="replace")
            content_type, http10 = resp.content_type, resp.version == (1, 0)
        except Exception as exc:  # the connection itself broke: as bad as a 500
            self.failures.append(f"{what}: {method} {url[:120]}: {type(exc).__name__}: {exc}")
            return 0
        self.statuses[status] = self.statuses.get(status, 0) + 1
        problem = self.judge(status, content_type, text, needs_token and not authed, http10)
        if problem:
            self.failures.append(f"{what}: {method} {url[:120]} -> {status} {problem}: {text[:200]}")
        if self.api.app.engine.halted is not None:  # a halt stops every later create: resume
            await self.api.client.post("/api/v1/admin/resume", headers=auth("erin"))
        return status

    async def send_raw(self, what: str, head: bytes, body: bytes = b"", *,
                       authed: bool = True) -> int:
        """Bytes as they are (a header that is not UTF-8, a raw byte in the target):
        ``head`` is the request line and headers, without the blank line."""
        self.count += 1
        port = self.api.client.server.port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % len(body) + body)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()
        top, _, text = answer.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[0], int(lines[0].split(" ")[1])
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        content_type = headers.get("Content-Type", "").split(";")[0]
        self.statuses[status] = self.statuses.get(status, 0) + 1
        problem = self.judge(status, content_type, text.decode("utf-8", "replace"), not authed,
                             version == "HTTP/1.0")
        if problem:
            self.failures.append(f"{what}: {head[:100]!r} -> {status} {problem}: {text[:200]!r}")
        return status

    @staticmethod
    def judge(status: int, content_type: str, text: str, unauthenticated: bool,
              http10: bool = False) -> str:
        if status >= 500:
            return "a 5xx"
        parser = status == 400 and http10
        # a request line or header over 8 KiB, or a raw byte that may not be in a URL:
        # refused by aiohttp's HTTP parser before routing and authentication (answered in
        # the API's format all the same: rfq_engine/api/parser_errors.py)
        if unauthenticated and not parser and status not in (401, 429):
            return "without a valid token, not a 401"
        if status < 400:
            return ""
        if content_type != "application/json":
            return f"an error as {content_type}, not JSON"
        try:
            data = json.loads(text)
        except ValueError:
            return "an error that is not JSON"
        if not isinstance(data, dict) or not {"error", "reason"} <= set(data) \
                or not set(data) <= {"error", "reason", "field"} \
                or not all(isinstance(data[k], str) and data[k] for k in ("error", "reason")):
            return "not the API's error format"
        return ""


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()  # ASCII: a lone surrogate travels as \\ud800


async def setup_rfqs(api: Api) -> dict[str, str]:
    """A live RFQ (pending approval), a filled one and its execution id."""
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(require_approval=True),
                                 headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    live = (await resp.json())["rfq_id"]
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(), headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    filled = (await resp.json())["rfq_id"]
    view = await api.wait_terminal(filled)
    assert view["awards"], view
    await api.wait_state(live, "pending_approval")
    return {"live": live, "filled": filled, "execution": view["awards"][0]["execution_id"]}


def concrete(path: str, ids: dict[str, str], rfq: str = "live") -> str:
    return path.replace("{rfq_id}", ids[rfq]).replace("{execution_id}", ids["execution"])


async def test_every_endpoint_survives_a_hostile_corpus(sweep_api: Api) -> None:
    api = sweep_api
    started = time.monotonic()
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    ids = await setup_rfqs(api)
    sweep = Sweep(api)
    admin = auth("erin")
    operations = [(m.upper(), p, op) for p, item in doc["paths"].items()
                  for m, op in item.items() if m in ("get", "post", "put", "patch", "delete")]
    assert len(operations) >= 15, operations
    missing = [f"{m} {p}" for m, p, op in operations if "requestBody" in op
               and f"{m} {p}" not in SAMPLES]
    assert not missing, f"give these operations a valid sample body in SAMPLES: {missing}"

    for method, path, op in operations:
        key = f"{method} {path}"
        needs_token = path not in PUBLIC
        url = concrete(path, ids)
        samples = SAMPLES.get(key, [None])
        valid = None if samples[0] is None else encode(samples[0])
        # -- authentication, and every role on the operation with a valid body
        for what, headers in AUTH_HEADERS:
            await sweep.send(f"{key}: {what}", method, url, body=valid, headers=headers,
                             needs_token=needs_token, authed=False)
        await sweep.send(f"{key}: ?token= off the stream", method,
                         f"{url}{'&' if '?' in url else '?'}token={TOKENS['erin']}", body=valid,
                         needs_token=needs_token, authed=path.endswith("/stream"))
        for role, user in ROLES.items():
            for rfq in ("live", "filled"):
                await sweep.send(f"{key} as {role} on the {rfq} RFQ", method,
                                 concrete(path, ids, rfq), body=valid, headers=auth(user))
        # -- path parameters
        for name in ("{rfq_id}", "{execution_id}"):
            if name in path:
                for value in PATH_VALUES:
                    bad = concrete(path.replace(name, value), ids)
                    await sweep.send(f"{key}: {name}={value[:20]}", method, bad, body=valid,
                                     headers=admin)
        # -- query parameters
        query = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        for name in query:
            for value in QUERY_VALUES:
                await sweep.send(f"{key}: ?{name}={value[:20]}", method, f"{url}?{name}={value}",
                                 body=valid, headers=admin)
            await sweep.send(f"{key}: ?{name} twice", method, f"{url}?{name}=1&{name}=x",
                             body=valid, headers=admin)
        if query:
            everything = "&".join(f"{n}={QUERY_VALUES[3]}" for n in query)
            await sweep.send(f"{key}: every parameter bad", method, f"{url}?{everything}",
                             body=valid, headers=admin)
        await sweep.send(f"{key}: an unknown parameter", method, f"{url}?zz_unknown=%ff",
                         body=valid, headers=admin)
        # -- whole bodies, then field by field
        for what, raw in RAW_BODIES:
            await sweep.send(f"{key}: body {what}", method, url, body=raw, headers=admin)
        for sample in samples if "requestBody" in op else []:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            user = "alice" if path == "/api/v1/rfqs" else "erin"
            status = await sweep.send(f"{key}: the sample", method, url, body=encode(sample),
                                      headers=auth(user))
            if status >= 300 and "{" not in path:  # the mutations need a valid body to start from
                sweep.failures.append(f"{key}: the sample body is refused ({status}): {sample}")
            for what, body in mutations(doc, schema, sample):
                await sweep.send(f"{key}: {what}", method, url, body=encode(body),
                                 headers=auth(user))
        await sweep.send(f"{key}: as text/plain", method, url, body=valid,
                         headers={**admin, "Content-Type": "text/plain; charset=latin-1"})
        # -- bytes no client library sends: headers that are not UTF-8, raw bytes in the target
        user = "alice" if path == "/api/v1/rfqs" else "erin"
        token = f"Authorization: Bearer {TOKENS[user]}".encode()
        for what, extra in RAW:
            await sweep.send_raw(f"{key}: {what}", b"%s %s HTTP/1.1\r\nHost: sweep\r\n%s\r\n"
                                 b"Content-Type: application/json\r\n%s"
                                 % (method.encode(), url.encode(), token, extra), valid or b"")
        for target in (url.encode() + b"/\xff", url.encode() + b"?x=\xed\xa0\x80",
                       url.encode() + b"\x00", url.encode() + b"#frag"):
            await sweep.send_raw(f"{key}: target {target[-8:]!r}", b"%s %s HTTP/1.1\r\nHost: s\r\n%s"
                                 % (method.encode(), target, token), valid or b"")
        if path == "/api/v1/rfqs" and method == "POST":
            for value in ("", " ", "k" * 201, "\u00e9t\u00e9", "%ff"):
                await sweep.send(f"{key}: Idempotency-Key {value[:10]!r}", method, url,
                                 body=valid, headers={**auth("alice"), "Idempotency-Key": value})
    # -- methods a path does not have
    for path, item in doc["paths"].items():
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - {m.upper() for m in item}:
            await sweep.send(f"{path}: {method}", method, concrete(path, ids), headers=admin)

    # -- afterwards: healthy, every event durable and the chain intact
    failures = sweep.failures
    if (health := await api.client.get("/healthz")).status != 200:
        failures.append(f"afterwards: /healthz answers {health.status}")
    try:
        await api.app.store.flush()
        report = await api.app.store.verify()
        if not report.ok:
            failures.append(f"afterwards: the audit chain does not verify: {report}")
    except Exception as exc:  # the audit writer died: the worst outcome of all
        failures.append(f"afterwards: the store fails: {type(exc).__name__}: {str(exc)[:300]}")
    elapsed = time.monotonic() - started
    print(f"hostile sweep: {sweep.count} requests over {len(operations)} operations in "
          f"{elapsed:.1f} s; statuses {dict(sorted(sweep.statuses.items()))}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:60])
    assert sweep.count > 2000


async def test_a_bearer_token_that_is_not_utf8_is_a_401(sweep_api: Api) -> None:
    sweep = Sweep(sweep_api)
    for method, path in (("GET", "/api/v1/me"), ("POST", "/api/v1/rfqs"), ("GET", "/metrics")):
        for token in (b"\xff\xfe", b"\xed\xa0\x80", b"ok\xe9"):
            await sweep.send_raw(f"{method} {path}: token {token!r}", b"%s %s HTTP/1.1\r\nHost: s\r\n"
                                 b"Authorization: Bearer %s" % (method.encode(), path.encode(), token),
                                 authed=False)
    assert (await sweep_api.client.get("/healthz")).status == 200
    assert not sweep.failures, "\n".join(sweep.failures)
