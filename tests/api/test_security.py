"""``rfq serve`` as a security team probes it: security headers on every response, no
server version, public health and readiness that name nothing, ``/metrics`` and the
readiness checks behind ``ops:read``, token expiry and rotation, and a limit on failed
authentications per client address."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rfq_engine.api.app import create_web_app
from rfq_engine.api.auth import hash_token
from rfq_engine.api.security import CSP, SERVER, TOKENS_KEY, FailureLimiter
from rfq_engine.config import ApiConfig, parse_config
from rfq_engine.wiring import App, open_app
from tests.api.conftest import TOKENS, Api, auth, config_data

OLD, NEW = "rotating-old-token-Zq81mX4", "rotating-new-token-Pw27kL9"


async def started(tmp_path: Path, **api: Any) -> tuple[App, TestClient[Any, Any]]:
    data = config_data(tmp_path)
    data["api"] = {**data["api"], **api}
    config = parse_config(data)
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    return app, client


@pytest.fixture
async def custom(tmp_path: Path) -> AsyncIterator[Any]:
    """``await custom(**api)``: a server whose ``[api]`` has these keys too."""
    opened: list[tuple[App, TestClient[Any, Any]]] = []

    async def make(**api: Any) -> TestClient[Any, Any]:
        opened.append(await started(tmp_path, **api))
        return opened[-1][1]

    try:
        yield make
    finally:
        for app, client in opened:
            await client.close()
            await app.close()


def user(name: str, roles: list[str], *tokens: str, **extra: Any) -> dict[str, Any]:
    hashes: str | list[str] = [hash_token(t) for t in tokens] if len(tokens) > 1 \
        else hash_token(tokens[0])
    return {"name": name, "roles": roles, "token_sha256": hashes, **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/healthz",
                                  "/readyz", "/api/v1/openapi.json", "/api/v1/me",
                                  "/api/v1/rfqs/nope", "/no-such-page", "/api/v1/nope"])
async def test_every_response_has_the_security_headers(api: Api, path: str) -> None:
    resp = await api.client.get(path, headers=auth("dave"))
    assert resp.headers["Content-Security-Policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Server"] == SERVER
    assert "aiohttp" not in resp.headers["Server"] and "Python" not in resp.headers["Server"]
    assert "Strict-Transport-Security" not in resp.headers  # only over TLS (test_tls.py)


async def test_errors_outside_any_handler_name_no_version(api: Api) -> None:
    """A 401, and a request aiohttp cannot even parse (answered before any handler)."""
    resp = await api.client.get("/api/v1/rfqs")
    assert resp.status == 401 and resp.headers["Server"] == SERVER
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(), 10)).decode("latin-1")
    writer.close()
    assert answer.startswith(("HTTP/1.0 400", "HTTP/1.1 400")), answer
    assert "aiohttp" not in answer and "Python/" not in answer
    assert f"Server: {SERVER}" in answer


async def test_the_ui_page_loads_only_its_own_modules_under_the_policy(api: Api) -> None:
    html = await (await api.client.get("/")).text()
    # no inline script, style or event handler: the policy would block them
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/static/app.js">']
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html)


# -- health, readiness, metrics ------------------------------------------------------------


async def test_public_health_and_readiness_name_nothing(api: Api) -> None:
    await api.app.engine.kill_switch(actor="erin", reason="desk-7 secret incident #42")
    health = await api.client.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    text = await ready.text()
    assert ready.status == 200 and await ready.json() == {"ready": True}
    assert "d1" not in text and "incident" not in text and "halted" not in text


async def test_readiness_says_not_ready_without_saying_why(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.app.engine, "dealer_online", lambda dealer: False)
    ready = await api.client.get("/readyz")
    assert ready.status == 503 and await ready.json() == {"ready": False}
    detail = await api.client.get("/api/v1/readiness", headers=auth("erin"))
    assert detail.status == 503
    body = await detail.json()
    assert body["ready"] is False and body["checks"]["dealers_online"] == 0
    assert set(body["checks"]["dealers"]) == set(api.app.engine.dealers)


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/readiness"])
async def test_metrics_and_readiness_checks_need_ops_read(api: Api, path: str) -> None:
    assert (await api.client.get(path)).status == 401
    assert (await api.client.get(path, headers=bearer("wrong-token-000000000"))).status == 401
    for trader_or_approver in ("alice", "carol"):
        resp = await api.client.get(path, headers=auth(trader_or_approver))
        assert resp.status == 403 and "ops:read" in (await resp.json())["reason"]
    for allowed in ("dave", "erin"):  # compliance, admin
        assert (await api.client.get(path, headers=auth(allowed))).status == 200


async def test_an_ops_user_reads_metrics_and_readiness_and_nothing_else(custom: Any) -> None:
    token = "prometheus-scraper-token-Hk3v9"
    client = await custom(users=[user("prometheus", ["ops"], token)])
    metrics = await client.get("/metrics", headers=bearer(token))
    assert metrics.status == 200 and "rfq_open_rfqs" in await metrics.text()
    ready = await client.get("/api/v1/readiness", headers=bearer(token))
    assert ready.status == 200 and "checks" in await ready.json()
    me = await (await client.get("/api/v1/me", headers=bearer(token))).json()
    assert me["roles"] == ["ops"] and me["may"] == ["ops:read"]
    for path in ("/api/v1/rfqs", "/api/v1/audit/events", "/api/v1/dealers"):
        assert (await client.get(path, headers=bearer(token))).status == 403, path


# -- expiry and rotation -------------------------------------------------------------------


async def test_an_expired_token_is_refused_and_says_so(custom: Any) -> None:
    now = datetime.now(UTC)
    client = await custom(users=[
        user("gone", ["trader"], OLD, expires_at=now - timedelta(seconds=1)),
        user("fine", ["trader"], NEW, expires_at=now + timedelta(days=1))])
    resp = await client.get("/api/v1/me", headers=bearer(OLD))
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert "expired" in (await resp.json())["reason"]
    assert (await client.get("/api/v1/me", headers=bearer(NEW))).status == 200


async def test_a_user_with_two_tokens_signs_in_with_either_until_one_is_removed(
        custom: Any) -> None:
    client = await custom(users=[user("rot", ["trader"], NEW, OLD)])
    for token in (OLD, NEW):
        me = await client.get("/api/v1/me", headers=bearer(token))
        assert me.status == 200 and (await me.json())["name"] == "rot"
    # the old hash removed (what SIGHUP does, test_tls.py): the old token stops working
    client.app[TOKENS_KEY].reload(ApiConfig.model_validate({"users": [user("rot", ["trader"], NEW)]}))
    assert (await client.get("/api/v1/me", headers=bearer(OLD))).status == 401
    assert (await client.get("/api/v1/me", headers=bearer(NEW))).status == 200


def test_user_token_hashes_and_expiry_are_validated() -> None:
    from pydantic import ValidationError

    def check(**fields: Any) -> str:
        with pytest.raises(ValidationError) as exc:
            ApiConfig.model_validate({"users": [{"name": "u", "roles": ["trader"],
                                                 "token_sha256": hash_token(OLD), **fields}]})
        return str(exc.value)

    assert "offset" in check(expires_at=datetime(2027, 1, 1))  # naive: refused
    assert "twice" in check(token_sha256=[hash_token(OLD)] * 2)
    assert "1 to 4" in check(token_sha256=[hash_token(f"{OLD}{i}") for i in range(5)])
    assert "64-character" in check(token_sha256=[hash_token(OLD), "abc"])
    with pytest.raises(ValidationError, match="share a token"):
        ApiConfig.model_validate({"users": [user("a", ["trader"], OLD, NEW),
                                            user("b", ["trader"], NEW)]})


# -- failed authentication -----------------------------------------------------------------


async def test_failed_authentications_are_limited_per_client_address(custom: Any) -> None:
    client = await custom(auth_failures=3, auth_failure_window_s=60, trust_forwarded_for=True)
    mallory = {"X-Forwarded-For": "203.0.113.9", **bearer("guess-000000000000")}
    for _ in range(3):
        assert (await client.get("/api/v1/me", headers=mallory)).status == 401
    blocked = await client.get("/api/v1/me", headers=mallory)
    assert blocked.status == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    body = await blocked.json()
    assert body["error"] == "too_many_requests" and "retry in" in body["reason"]
    # while blocked, not even a valid token is looked at from that address ...
    same_address_valid = {"X-Forwarded-For": "203.0.113.9", **auth("alice")}
    assert (await client.get("/api/v1/me", headers=same_address_valid)).status == 429
    assert (await client.get("/metrics", headers=same_address_valid)).status == 429
    # ... other addresses are not affected, nor are the public endpoints
    other = {"X-Forwarded-For": "198.51.100.7", **auth("alice")}
    assert (await client.get("/api/v1/me", headers=other)).status == 200
    assert (await client.get("/healthz", headers=mallory)).status == 200
    # only the proxy's own (last) entry counts: a client cannot pick its address
    spoof = {"X-Forwarded-For": "10.9.9.9, 203.0.113.9", **auth("alice")}
    assert (await client.get("/api/v1/me", headers=spoof)).status == 429


async def test_without_a_trusted_proxy_the_peer_address_counts(custom: Any) -> None:
    client = await custom(auth_failures=2)
    spoofed = [{"X-Forwarded-For": f"192.0.2.{i}", **bearer("guess-000000000000")} for i in range(3)]
    assert (await client.get("/api/v1/me", headers=spoofed[0])).status == 401
    assert (await client.get("/api/v1/me", headers=spoofed[1])).status == 401
    assert (await client.get("/api/v1/me", headers=spoofed[2])).status == 429
    assert (await client.get(f"/api/v1/stream?token={TOKENS['alice']}")).status == 429


def test_the_limiter_window_ends_and_its_memory_is_bounded() -> None:
    now = [1000.0]
    limiter = FailureLimiter(limit=2, window_s=10, max_clients=100, clock=lambda: now[0])
    limiter.failed("a")
    assert limiter.retry_after("a") is None  # one failure: may try again
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(10)
    now[0] += 4
    assert limiter.retry_after("a") == pytest.approx(6)
    now[0] += 6
    assert limiter.retry_after("a") is None and len(limiter) == 0  # window over: forgotten
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100  # the oldest addresses went first
    assert limiter.retry_after("10.0.0.0") is None
    limiter.failed("10.0.39.15")
    assert limiter.retry_after("10.0.39.15") is not None  # the newest are kept
