"""``rfq --help`` works and stays light: no database, MQTT or exchange stack is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.clikit import rfq

pytestmark = pytest.mark.slow

HEAVY = ("ccxt", "aiomqtt", "paho", "sqlalchemy", "sqlmodel", "aiosqlite", "asyncpg")

PROBE = """
import json, sys
from rfq_engine.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_help_lists_every_command(tmp_path: Path) -> None:
    done = rfq(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rfq")
    for command in ("demo", "request", "recover", "config", "audit"):
        assert command in done.stdout


@pytest.mark.parametrize("argv", [["--help"], ["request", "--help"], ["audit", "verify", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_imports_no_heavy_dependency(tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["code"] == 0
    loaded = sorted({m.split(".")[0] for m in probe["modules"]} & set(HEAVY))
    assert loaded == [], f"`rfq {' '.join(argv)}` imported {loaded}"
    assert "usage: rfq" in done.stdout


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "rfq"
    if not script.exists():
        pytest.skip("the rfq console script is not installed next to this interpreter")
    done = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage: rfq" in done.stdout
