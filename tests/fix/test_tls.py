"""A FIX session over TLS to a QuickFIX desk listening with its SSLSocketAcceptor (OpenSSL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dealer_adapters.fix import FixDealers
from rfq_engine.domain import DealerId, ExecutionId, Inbound
from tests.fix.conftest import DeskFactory, fix_config

DESK = DealerId("desk-t")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key (openssl, valid one day)."""
    cert, key = directory / "desk.crt", directory / "desk.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_a_session_over_tls_logs_on_and_one_without_the_desks_ca_does_not(
        quickfix_desks: DeskFactory, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    desk = await quickfix_desks("desk-t", sender="DESK-T", tls=(cert, key))
    got: list[Inbound] = []
    trusted = FixDealers({DESK: fix_config(desk, tmp_path / "ok", tls={"ca_file": str(cert),
                                                                       "server_hostname": "localhost"})})
    try:
        await trusted.start(got.append)
        await trusted.wait_online([DESK], 20)
        lookup = await trusted.query_execution(DESK, ExecutionId("never-sent"))
        assert lookup.state.value == "not_found"  # answered from the journal: nothing was sent
        assert desk.count("LOGON") == 1
    finally:
        await trusted.close()
    await desk.wait_for(lambda: desk.count("LOGOUT") == 1, "the logout")

    untrusted = FixDealers({DESK: fix_config(desk, tmp_path / "bad", tls={"server_hostname": "localhost"},
                                             logon_timeout_ms=500)})
    try:
        await untrusted.start(got.append)  # the system's CAs do not know the desk's certificate
        with pytest.raises(TimeoutError):
            await untrusted.wait_online([DESK], 1.0)
        session = untrusted.session(DESK)
        assert session is not None and session.connections == 0  # the TLS handshake never completed
    finally:
        await untrusted.close()
    assert desk.count("LOGON") == 1
