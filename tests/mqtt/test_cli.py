"""``rfq broker-config``, ``rfq dealer`` and ``rfq demo --mqtt`` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from tests.cli.clikit import rfq
from tests.mqtt.conftest import require_mosquitto
from tests.mqtt.kit import MOSQUITTO, free_port

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
from rfq_engine.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rfq_engine.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("argv", [["dealer", "--help"], ["broker-config", "--help"], ["demo", "--help"]],
                         ids=lambda a: " ".join(a))
def test_the_new_commands_help_without_importing_mqtt(tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["code"] == 0
    assert not {m.split(".")[0] for m in probe["modules"]} & {"aiomqtt", "paho"}
    assert "usage: rfq" in done.stdout


def engine_toml(port: int) -> str:
    return f"""
[market]
spot = {{ BTC = "40000" }}
rate = "0.05"

[mandates.treasury]
underlyings = ["BTC"]
instruments = ["future"]
max_tenor_days = 90
[mandates.treasury.dealers]
desk-a = {{ credit_limit = "1000000" }}
desk-b = {{ credit_limit = "1000000" }}

[mqtt]
port = {port}
password_env = "T_ENGINE_PW"

[[dealers]]
id = "desk-a"
kind = "mqtt"
[dealers.mqtt]
secret_env = "T_SECRET_A"
password_env = "T_PW_A"

[[dealers]]
id = "desk-b"
kind = "mqtt"
[dealers.mqtt]
secret_env = "T_SECRET_B"
password_env = "T_PW_B"
"""


async def test_broker_config_writes_files_a_real_mosquitto_enforces(tmp_path: Path) -> None:
    require_mosquitto()
    port = free_port()
    (tmp_path / "rfq.toml").write_text(engine_toml(port))
    env = {"T_ENGINE_PW": secrets.token_hex(8), "T_PW_A": secrets.token_hex(8),
           "T_PW_B": secrets.token_hex(8), "T_SECRET_A": "a" * 32, "T_SECRET_B": "b" * 32}
    missing = run(["broker-config", "--config", "rfq.toml", "--out", "broker"], tmp_path,
                  env={k: v for k, v in env.items() if k != "T_PW_B"})
    assert missing.returncode == 1 and "T_PW_B is not set" in missing.stderr
    assert run(["config", "check", "rfq.toml"], tmp_path).returncode == 0
    extra = ["--run-as", "root"] if os.geteuid() == 0 else []
    done = run(["broker-config", "--config", "rfq.toml", "--out", "broker", *extra], tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "broker"
    assert {p.name for p in out.iterdir()} >= {"mosquitto.conf", "passwd", "acl", "data"}
    assert env["T_PW_A"] not in (out / "passwd").read_text()
    assert "user desk-b\ntopic read rfq/v1/dealers/desk-b/rfq" in (out / "acl").read_text()

    broker = await asyncio.create_subprocess_exec(MOSQUITTO, "-c", str(out / "mosquitto.conf"),
                                                  stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL)
    try:
        pause = 0.005
        async with asyncio.timeout(20):
            while True:  # bounded backoff until the broker listens
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
        async with aiomqtt.Client("127.0.0.1", port, username="rfq-engine", password=env["T_ENGINE_PW"]):
            pass
        async with aiomqtt.Client("127.0.0.1", port, username="desk-a", password=env["T_PW_A"]):
            pass
        for user, password in (("desk-a", env["T_PW_B"]), ("nobody", "x"), (None, None)):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", port, username=user, password=password):
                    pass
    finally:
        broker.kill()
        await broker.wait()


def test_rfq_dealer_refuses_a_bad_config_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "dealer.toml"
    path.write_text('[dealer]\nid = "desk-a"\nsecret_env = "T_SECRET"\n[quoting]\nspread_bps = 20.5\n'
                    '[market]\nspot = { BTC = "40000" }\nrate = "0.05"\n')
    done = run(["dealer", "--config", str(path)], tmp_path)
    assert done.returncode == 1
    assert re.search(r"dealer\.toml: quoting\.spread_bps: .*quoted decimal string", done.stderr), done.stderr
    path.write_text(path.read_text().replace("spread_bps = 20.5", 'spread_bps = "20"'))
    done = run(["dealer", "--config", str(path)], tmp_path, env={"T_SECRET": ""})
    assert done.returncode == 1 and "T_SECRET is not set" in done.stderr, done.stderr


def test_demo_over_mqtt_fills_both_rfqs_with_three_dealer_processes(tmp_path: Path) -> None:
    require_mosquitto()
    db = tmp_path / "demo.db"
    done = rfq(["demo", "--mqtt", "--fast", "--store", f"sqlite+aiosqlite:///{db}"], tmp_path, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "private Mosquitto on 127.0.0.1:" in out
    sections = out.split("\n== ")[1:]
    assert len(sections) == 2, out
    for section in sections:
        assert len(re.findall(r"^\s+\+\s*[\d.]+s\s+quote\s", section, re.MULTILINE)) >= 2, section
        assert "=> FILLED" in section, section
    assert re.search(r"Audit chain intact: \d+ events", out), out


def test_demo_over_mqtt_says_how_to_install_mosquitto_when_it_is_missing(tmp_path: Path) -> None:
    done = run(["demo", "--mqtt", "--fast", "--store", f"sqlite+aiosqlite:///{tmp_path}/d.db"], tmp_path,
               env={"RFQ_MOSQUITTO": str(tmp_path / "no-such-mosquitto")})
    assert done.returncode == 1
    assert "apt-get install mosquitto" in done.stderr and "brew install mosquitto" in done.stderr, done.stderr
    assert "`rfq demo` without --mqtt needs no broker" in done.stderr
    assert not (tmp_path / "d.db").exists()
