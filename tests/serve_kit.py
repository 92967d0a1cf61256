"""``rfq serve`` as a real process, for the tests that start one.

- ``users_toml``: the config's ``[[api.users]]`` tables for a set of test users (each
  token stored as its hash, as ``rfq api new-token`` prints it);
- ``start_serve``: ``python -m rfq_engine.cli.main serve --config <file> [args]`` as a child
  process, stdout piped (the lines that say it is listening or standing by);
- ``listening_on``: the base URL from the line ``rfq serve listening on <url>[, <url>]``,
  printed once the server accepts connections (an ``AssertionError`` showing what came
  instead);
- ``LISTENING`` / ``STANDBY``: how those stdout lines start (``--ha``: ``STANDBY`` first,
  ``LISTENING`` once it leads).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

__all__ = ["LISTENING", "STANDBY", "listening_on", "start_serve", "users_toml"]

LISTENING = "rfq serve listening on "
STANDBY = "rfq serve standby on "
START_TIMEOUT_S = 20.0


def users_toml(users: Mapping[str, str], tokens: Mapping[str, str]) -> str:
    """One ``[[api.users]]`` table per user: its role ``users[name]`` and the SHA-256 of its
    bearer token ``tokens[name]``."""
    from rfq_engine.api.auth import hash_token

    return "".join(f'[[api.users]]\nname = "{name}"\nroles = ["{role}"]\n'
                   f'token_sha256 = "{hash_token(tokens[name])}"\n' for name, role in users.items())


async def start_serve(config: Path, *args: str, stderr: int | IO[bytes] = asyncio.subprocess.PIPE,
                      env: Mapping[str, str] | None = None,
                      cwd: Path | None = None) -> asyncio.subprocess.Process:
    """``rfq serve --config config *args`` started (not yet listening: ``listening_on``).

    ``stderr`` is piped unless given (a file for a long-running server: a full pipe blocks
    it); ``env`` replaces the environment when given."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rfq_engine.cli.main", "serve", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=stderr, env=None if env is None else dict(env), cwd=cwd)


async def listening_on(proc: asyncio.subprocess.Process, timeout: float = START_TIMEOUT_S) -> str:
    """The first URL of the server's ``LISTENING`` line, its first stdout line (``http://...``)."""
    assert proc.stdout is not None, "start_serve pipes stdout"
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
    assert line.startswith(LISTENING + "http"), line
    return line.removeprefix(LISTENING).split(",")[0].strip()
