"""``rfq api new-token`` and ``rfq api hash-token``: a strong token and its hash; a token
that is easy to guess is refused."""

from __future__ import annotations

import io
import secrets

import pytest

from rfq_engine.api.auth import hash_token
from rfq_engine.api.tokens import MIN_BITS, estimated_bits, token_problem
from rfq_engine.cli.main import main


def hash_cli(token: str, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code = main(["api", "hash-token"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("weak", [
    "aaaaaaaaaaaaaaaa",  # the example
    "abcdefghijklmnopqrstuvwxyz", "0123456789012345", "passwordpassword", "abababababababab",
    "zyxwvutsrqponmlkjihg", "2468024680246802", "Tr0ub4dor&3", "short-token",
    "correct horse battery staple",  # spaces cannot travel in the header
])
def test_hash_token_refuses_a_token_that_is_easy_to_guess(
        weak: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hash_cli(weak, monkeypatch, capsys)
    assert code == 1 and out == ""
    assert err.startswith("rfq: a token must") or "too easy to guess" in err
    assert weak not in err  # the token itself is never echoed


@pytest.mark.parametrize("strong", [
    secrets.token_urlsafe(32), secrets.token_hex(16), "CorrectHorseBatteryStaple1",
    "alice-secret-token-0123456789",
])
def test_hash_token_prints_the_sha256_of_a_strong_token(
        strong: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = hash_cli(strong, monkeypatch, capsys)
    assert (code, out, err) == (0, hash_token(strong) + "\n", "")


def test_new_token_prints_a_strong_token_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "new-token"]) == 0
    out, err = capsys.readouterr()
    lines = dict(line.split() for line in out.splitlines())
    token = lines["token"]
    assert token.startswith("rfq_") and len(token) == 47
    assert lines["token_sha256"] == hash_token(token)
    assert token_problem(token) is None and estimated_bits(token) > 3 * MIN_BITS
    assert "[[api.users]]" in err
    assert main(["api", "new-token"]) == 0
    assert capsys.readouterr().out.split()[1] != token  # a new one every time
