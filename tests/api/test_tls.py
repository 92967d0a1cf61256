"""``rfq serve`` over TLS with a self-signed certificate made in the test, SIGHUP reloading
the users (token rotation without a restart), and the warnings it gives at start."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from rfq_engine.api.auth import hash_token
from rfq_engine.cli.cmd_serve import serve
from rfq_engine.config import ConfigError, load_config, parse_config
from tests.api.conftest import TOKENS, auth, config_data
from tests.api.test_serve import write_config

NEW = "rotated-alice-token-Qm38vT1x"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


def tls_config(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = self_signed(tmp_path)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace(
        "port = 0\n", f'port = 0\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1))
    return path, cert


class Running:
    def __init__(self, base: str, task: asyncio.Task[int], stop: asyncio.Event) -> None:
        self.base, self.task, self.stop = base, task, stop


@pytest.fixture
async def tls_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                     ) -> AsyncIterator[tuple[Running, Path, Path]]:
    path, cert = tls_config(tmp_path)
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(load_config(path), ready=ready, stop=stop,
                                     config_path=str(path)))
    await asyncio.wait_for(ready.wait(), 30)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("rfq serve listening on https://127.0.0.1:"), line
    running = Running(line.split(" on ")[1].split(",")[0].strip(), task, stop)
    try:
        yield running, path, cert
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_serve_speaks_https_and_wss_only(tls_server: tuple[Running, Path, Path]) -> None:
    running, _, cert = tls_server
    async with aiohttp.ClientSession(running.base) as http:
        async with http.get("/api/v1/me", headers=auth("alice"), ssl=trusting(cert)) as resp:
            assert resp.status == 200 and (await resp.json())["name"] == "alice"
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
            assert resp.headers["Server"] == "rfq-engine"
        async with http.ws_connect(f"/api/v1/stream?token={TOKENS['bob']}",
                                   ssl=trusting(cert)) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get("/healthz")  # an untrusted certificate is not silently accepted
    plain = running.base.replace("https://", "http://")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(plain + "/healthz") as resp:
                await resp.read()  # no plaintext HTTP on the TLS port


async def test_sighup_reloads_the_users(tls_server: tuple[Running, Path, Path]) -> None:
    """Rotation without a restart: a second hash for alice, then the old one removed."""
    running, path, cert = tls_server
    text = path.read_text()
    old = hash_token(TOKENS["alice"])
    context = trusting(cert)

    async def me(token: str) -> int:
        async with aiohttp.ClientSession(running.base) as http, http.get(
                "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, ssl=context) as r:
            return r.status

    async def after_sighup(new_text: str, token: str, status: int) -> None:
        path.write_text(new_text)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if await me(token) == status:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"after SIGHUP {token} never answered {status}")

    assert await me(NEW) == 401
    await after_sighup(text.replace(f'"{old}"', f'["{hash_token(NEW)}", "{old}"]'), NEW, 200)
    assert await me(TOKENS["alice"]) == 200  # both work during the hand-over
    await after_sighup(text.replace(f'"{old}"', f'"{hash_token(NEW)}"'), TOKENS["alice"], 401)
    assert await me(NEW) == 200
    # a file that no longer validates changes nothing, and the server keeps serving
    path.write_text(text.replace("[api]", "[api]\nnot_a_key = 1"))
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.sleep(0.2)
    assert await me(NEW) == 200 and await me(TOKENS["alice"]) == 401
    assert not running.task.done()


def test_tls_settings_are_checked_before_serving(tmp_path: Path) -> None:
    from rfq_engine.api.security import ssl_context

    data = config_data(tmp_path)
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        parse_config({**data, "api": {**data["api"], "tls_cert": "/x/cert.pem"}})
    missing = parse_config({**data, "api": {**data["api"], "tls_cert": str(tmp_path / "no.pem"),
                                             "tls_key": str(tmp_path / "no.key")}})
    with pytest.raises(ConfigError, match="no such file"):
        ssl_context(missing.api)
    (tmp_path / "bad.pem").write_text("not a certificate")
    bad = parse_config({**data, "api": {**data["api"], "tls_cert": str(tmp_path / "bad.pem"),
                                         "tls_key": str(tmp_path / "bad.pem")}})
    with pytest.raises(ConfigError, match="cannot load"):
        ssl_context(bad.api)


@pytest.mark.slow
def test_serve_without_users_warns_at_start(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text()
    path.write_text(text[:text.index("[[api.users]]")] + text[text.index("[market]"):])
    proc = subprocess.Popen([sys.executable, "-m", "rfq_engine.cli.main", "serve", "--config",
                             str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("rfq serve listening on http://")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines()]  # still JSON lines
    warned = [x for x in lines if x.get("event") == "serve.config_warning"]
    assert any("nobody can sign in" in x["warning"] and x["level"] == "warning" for x in warned)

