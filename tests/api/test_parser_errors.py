"""Requests the HTTP parser refuses (before any handler or middleware runs) are answered in
the API's JSON error format, with the security headers, and the connection is closed;
the server keeps serving. Sent over raw sockets, since no HTTP client sends them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rfq_engine.api.security import SERVER
from tests.api.conftest import Api

MALFORMED = {
    "bad request line": b"GARBAGE\x01 / HTTP/1.1\r\nHost: x\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "bad HTTP version": b"GET /api/v1/me HTTP/9.Z\r\nHost: x\r\n\r\n",
    "header without a colon": b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "control character in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "space before a header's colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "oversized header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n",
    "request line too long": b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "too many headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                        + b"".join(b"X-%d: v\r\n" % i for i in range(300)) + b"\r\n",
    "two Content-Length headers": b"POST /api/v1/rfqs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Content-Length: 3\r\n\r\n{}",
    "bad chunked encoding": b"POST /api/v1/rfqs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}
OUR_WORDS = {"a request line or header is too long", "not an HTTP request, or an invalid method",
             "an invalid request line", "an invalid request target", "an invalid header",
             "an invalid transfer encoding", "an invalid Content-Length", "an invalid header or framing",
             "refused by the HTTP parser"}


async def exchange(server: TestServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes it
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_request_the_parser_refuses_gets_the_json_error(api: Api, raw: bytes) -> None:
    status, headers, body = await exchange(api.client.server, raw)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    data: dict[str, Any] = json.loads(body)
    assert set(data) == {"error", "reason"} and data["error"] == "bad_request"
    assert data["reason"].startswith("malformed HTTP request: ") and "\n" not in data["reason"]
    assert data["reason"].split(": ", 1)[1] in OUR_WORDS  # never a byte of the request
    assert headers["server"] == SERVER and headers["x-content-type-options"] == "nosniff"
    healthy = await api.client.get("/healthz")
    assert healthy.status == 200


async def test_the_answer_never_quotes_the_request_a_token_included(api: Api) -> None:
    token = "Bearer sEcReT-" + "t" * 10_000
    status, _, body = await exchange(api.client.server, b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n"
                                     b"Authorization: " + token.encode() + b"\r\n\r\n")
    assert status == 400 and b"sEcReT" not in body and b"ttt" not in body
    assert json.loads(body)["reason"] == "malformed HTTP request: a request line or header is too long"


async def test_a_well_formed_request_on_the_same_port_is_unchanged(api: Api) -> None:
    status, _, body = await exchange(
        api.client.server, b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 401 and json.loads(body)["error"] == "unauthorized"


async def test_other_aiohttp_servers_in_the_process_keep_their_own_answer(api: Api) -> None:
    other = web.Application()
    server = TestServer(other)
    await server.start_server()
    try:
        status, headers, body = await exchange(server, MALFORMED["bad request line"])
    finally:
        await server.close()
    assert status == 400 and headers["content-type"].startswith("text/plain"), body
