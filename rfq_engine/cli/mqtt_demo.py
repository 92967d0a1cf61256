"""``rfq demo --mqtt``: the demo's RFQs over MQTT, with real processes on a private broker.

It starts a Mosquitto broker on a free local port from a config generated exactly as
``rfq broker-config`` writes it (password file, ACL, persistence, TCP_NODELAY), three
reference dealer bots as separate ``rfq dealer`` processes (alpha-otc, bravo-otc and
charlie-mm, which quotes tight but rejects on last look), and the engine with
``kind = "mqtt"`` dealers. Secrets and passwords are random per run; everything lives
in a temporary directory that is removed afterwards. The audit log goes to the demo's
store, as with ``rfq demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import tempfile
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from dealer_tools.brokerconf import INSTALL_HINT, find_tool
from rfq_engine.cli.demo import run_demo_rfqs, verify_demo_store
from rfq_engine.cli.live import LiveView
from rfq_engine.config import parse_config
from rfq_engine.domain import DealerId

__all__ = ["MQTT_DEMO_DEALERS", "run_mqtt_demo", "stop_process"]

MQTT_DEMO_DEALERS = ("alpha-otc", "bravo-otc", "charlie-mm")
_ENGINE_PASSWORD_ENV = "RFQ_DEMO_ENGINE_MQTT_PASSWORD"
_READY_S = 30.0


def _env_name(dealer: str, what: str) -> str:
    return f"RFQ_DEMO_{dealer.replace('-', '_').upper()}_{what}"


def _missing(what: str) -> int:
    print(f"rfq demo --mqtt: {what} was not found, and the MQTT demo runs its own private "
          f"Mosquitto broker.\n  To run it, {INSTALL_HINT}.\n  (Set RFQ_MOSQUITTO to the broker "
          "binary if it is installed somewhere unusual.)\n  `rfq demo` without --mqtt needs "
          "no broker.", file=sys.stderr)
    return 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def _dealer_toml(dealer: str, port: int, quoting: dict[str, Any], market: dict[str, Any]) -> str:
    lines = [
        "[dealer]", f'id = "{dealer}"', f'secret_env = "{_env_name(dealer, "SECRET")}"', "",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", f'password_env = "{_env_name(dealer, "PASSWORD")}"',
        "reconnect_initial_ms = 50", "reconnect_max_ms = 1000", "",
        "[quoting]", *(f"{k} = {_toml_value(v)}" for k, v in quoting.items()), "",
        "[market]", *(f"{k} = {_toml_value(v)}" for k, v in market.items()), "",
        "[logging]", 'level = "INFO"', "json = true", "",
    ]
    return "\n".join(lines)


async def _wait_listening(process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    """Poll the broker's port with bounded backoff until it accepts connections."""
    pause = 0.005
    async with asyncio.timeout(_READY_S):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"mosquitto exited with {process.returncode}:\n{_tail(log)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.2)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def stop_process(process: asyncio.subprocess.Process, *, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process has ended."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def find_mosquitto() -> tuple[str | None, str]:
    """``(broker binary, "")``, or ``(None, what is missing)``. ``RFQ_MOSQUITTO`` overrides."""
    mosquitto = os.environ.get("RFQ_MOSQUITTO") or find_tool("mosquitto")
    if mosquitto is None or not Path(mosquitto).is_file():
        return None, f"the Mosquitto broker ({mosquitto or 'mosquitto'})"
    if find_tool("mosquitto_passwd") is None:
        return None, "mosquitto_passwd (it comes with the broker)"
    return mosquitto, ""


async def run_mqtt_demo(store_url: str, *, fast: bool = False) -> int:
    mosquitto, missing = find_mosquitto()
    if mosquitto is None:
        return _missing(missing)
    with tempfile.TemporaryDirectory(prefix="rfq-demo-mqtt-") as tmp:
        return await _run(Path(tmp), mosquitto, store_url, fast=fast)


async def _run(tmp: Path, mosquitto: str, store_url: str, *, fast: bool) -> int:
    from dealer_adapters.mqtt.adapter import MqttDealers
    from rfq_engine.cli.mqtt_broker import write_for_config
    from rfq_engine.wiring import open_app

    text = resources.files("rfq_engine.cli").joinpath("demo.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    port = _free_port()
    env = {_ENGINE_PASSWORD_ENV: secrets.token_hex(16)}
    quoting: dict[str, dict[str, Any]] = {}
    for entry in data["dealers"]:
        if entry["id"] in MQTT_DEMO_DEALERS:
            table = dict(entry.get("simulated", {}))
            if fast:  # short windows: the desks answer faster, as in `rfq demo --fast`
                for key in ("latency_ms", "latency_jitter_ms"):
                    if key in table:
                        table[key] = int(table[key]) // 4
            quoting[entry["id"]] = table
    for dealer in MQTT_DEMO_DEALERS:
        env[_env_name(dealer, "SECRET")] = secrets.token_hex(32)
        env[_env_name(dealer, "PASSWORD")] = secrets.token_hex(16)
    data["dealers"] = [{"id": d, "kind": "mqtt", "mqtt": {"secret_env": _env_name(d, "SECRET"),
                                                         "password_env": _env_name(d, "PASSWORD")}}
                       for d in MQTT_DEMO_DEALERS]
    mandate = data["mandates"]["treasury"]
    mandate["dealers"] = {d: mandate["dealers"][d] for d in MQTT_DEMO_DEALERS}
    data["mqtt"] = {"host": "127.0.0.1", "port": port, "password_env": _ENGINE_PASSWORD_ENV,
                    "reconnect_initial_ms": 50, "reconnect_max_ms": 1000}
    config = parse_config(data, "embedded demo config (--mqtt)")
    os.environ.update(env)  # the engine reads its secrets from the environment, as in production

    files = write_for_config(config, tmp / "broker", environ=env, bind="127.0.0.1",
                             run_as="root" if os.geteuid() == 0 else None, source="rfq demo --mqtt")
    broker_log = tmp / "mosquitto.log"
    children: list[asyncio.subprocess.Process] = []
    with broker_log.open("wb") as log:
        broker = await asyncio.create_subprocess_exec(mosquitto, "-c", str(files.config), stdout=log,
                                                      stderr=asyncio.subprocess.STDOUT)
    children.append(broker)
    app = None
    try:
        await _wait_listening(broker, port, broker_log)
        logs: dict[str, Path] = {}
        for dealer in MQTT_DEMO_DEALERS:
            path = tmp / f"{dealer}.toml"
            path.write_text(_dealer_toml(dealer, port, quoting[dealer], data["market"]), encoding="utf-8")
            logs[dealer] = tmp / f"{dealer}.log"
            with logs[dealer].open("wb") as out:
                children.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "rfq_engine.cli.main", "dealer", "--config", str(path),
                    stdout=out, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env}))
        print(f"RFQ engine demo over MQTT — private Mosquitto on 127.0.0.1:{port} (generated "
              "config: passwords, per-dealer ACL, persistence, TCP_NODELAY)")
        print(f"  three reference dealer bots as separate processes (`rfq dealer`): "
              f"{', '.join(MQTT_DEMO_DEALERS)}; charlie-mm quotes tight but rejects on last look")
        app = await open_app(config, store_url=store_url)
        adapter = next(a for a in app.adapters if isinstance(a, MqttDealers))
        try:
            await adapter.wait_online([DealerId(d) for d in MQTT_DEMO_DEALERS], timeout=_READY_S)
        except TimeoutError as exc:
            print(f"rfq demo --mqtt: {exc}", file=sys.stderr)
            for dealer, path in logs.items():
                print(f"--- {dealer}:\n{_tail(path)}", file=sys.stderr)
            return 1
        print(f"  store {store_url}; every message signed (HMAC-SHA256) and verified; QoS 1, "
              "persistent sessions")
        view = LiveView()
        app.engine.add_listener(view)
        try:
            await run_demo_rfqs(app, view, 1500 if fast else 3000, MQTT_DEMO_DEALERS)
        finally:
            await view.close()
    finally:
        if app is not None:
            await app.close()
        for child in reversed(children):
            await stop_process(child)
    return await verify_demo_store(store_url)
