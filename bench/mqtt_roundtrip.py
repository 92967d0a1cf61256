"""QoS 1 round trip through a private Mosquitto, with and without TCP_NODELAY.

Two figures per variant. **PUBACK**: the engine publishes a message on
``{prefix}/dealers/desk-a/rfq`` at QoS 1 until the broker's acknowledgement arrives (what
every ``send_rfq``/``send_award`` waits for). **reply**: from that publish until the
dealer's answer on ``.../desk-a/quote`` (QoS 1 again) reaches the engine: the wire cost of
an RFQ and its quote.
Both sides use the project's own connection code (``dealer_adapters.mqtt.connection``:
persistent session, acknowledge after hand-off) and the broker runs the configuration
``rfq broker-config`` generates (password file, ACL). Payloads are ~400-byte envelopes.

Variants: TCP_NODELAY on the clients' sockets on or off, and ``set_tcp_nodelay`` in the
broker on or off. Without it, each small MQTT packet waits for the peer's delayed ACK
(Nagle's algorithm), which shows as tens of milliseconds per round trip.

    .venv/bin/python bench/mqtt_roundtrip.py [--iterations 200] [--warmup 20]

Needs ``mosquitto`` and ``mosquitto_passwd`` (``/usr/sbin`` is searched too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt

from dealer_adapters.mqtt.config import MqttBrokerConfig
from dealer_adapters.mqtt.connection import MqttLink
from dealer_adapters.mqtt.envelope import Topics, build_envelope, encode_envelope
from dealer_tools.brokerconf import find_tool, write_broker_files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_listening(port: int) -> None:
    pause = 0.005
    async with asyncio.timeout(20):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            writer.close()
            return


async def measure(directory: Path, *, client_nodelay: bool, broker_nodelay: bool, iterations: int,
                  warmup: int) -> tuple[list[float], list[float]]:
    mosquitto = find_tool("mosquitto")
    assert mosquitto is not None, "mosquitto is not installed"
    port = free_port()
    engine_pw, desk_pw = secrets.token_hex(8), secrets.token_hex(8)
    config = MqttBrokerConfig(port=port, tcp_nodelay=client_nodelay, reconnect_initial_ms=50)
    files = write_broker_files(directory, broker=config, engine_password=engine_pw,
                               dealer_passwords={"desk-a": desk_pw}, bind="127.0.0.1",
                               run_as="root" if os.geteuid() == 0 else None, source="bench")
    if not broker_nodelay:
        text = files.config.read_text().replace("set_tcp_nodelay true", "set_tcp_nodelay false")
        files.config.write_text(text)
    broker = await asyncio.create_subprocess_exec(mosquitto, "-c", str(files.config),
                                                  stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL)
    topics = Topics(config.prefix)
    secret = secrets.token_bytes(32)
    body = {"rfq_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "quote_id": "Q-1", "bid": "39950",
            "quantity": "100", "valid_until": "2026-11-21T10:00:08.000000Z"}
    payload = encode_envelope(build_envelope("quote", body, dealer_id="desk-a", secret=secret))
    replies: asyncio.Queue[float] = asyncio.Queue()
    dealer: MqttLink | None = None

    def engine_got(message: aiomqtt.Message, received: datetime) -> None:
        replies.put_nowait(time.perf_counter())

    def dealer_got(message: aiomqtt.Message, received: datetime) -> None:
        assert dealer is not None
        asyncio.get_running_loop().create_task(dealer.publish(topics.topic("desk-a", "quote"), payload))

    try:
        await wait_listening(port)
        engine = MqttLink(config, username="rfq-engine", password=engine_pw, client_id="rfq-engine",
                          subscriptions=[topics.topic("desk-a", "quote")], on_message=engine_got,
                          name="bench-engine")
        dealer = MqttLink(config, username="desk-a", password=desk_pw, client_id="desk-a",
                          subscriptions=[topics.topic("desk-a", "rfq")], on_message=dealer_got,
                          name="bench-dealer")
        assert await engine.start() and await dealer.start()
        assert engine.nodelay() is client_nodelay
        acked: list[float] = []
        replied: list[float] = []
        for i in range(warmup + iterations):
            start = time.perf_counter()
            await engine.publish(topics.topic("desk-a", "rfq"), payload)
            puback = time.perf_counter()
            done = await asyncio.wait_for(replies.get(), 10)
            if i >= warmup:
                acked.append((puback - start) * 1000)
                replied.append((done - start) * 1000)
        await dealer.close()
        await engine.close()
        return acked, replied
    finally:
        broker.kill()
        await broker.wait()


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    print(f"QoS 1 over a private Mosquitto, {args.iterations} samples after {args.warmup} warm-up; "
          f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print("| client TCP_NODELAY | broker set_tcp_nodelay | PUBACK p50 | PUBACK p99 | reply p50 | "
          "reply p90 | reply p99 | reply mean |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="rfq-bench-mqtt-") as tmp:
        for i, (client, brk) in enumerate([(True, True), (False, True), (True, False), (False, False)]):
            acked, replied = await measure(Path(tmp) / f"v{i}", client_nodelay=client, broker_nodelay=brk,
                                           iterations=args.iterations, warmup=args.warmup)
            print(f"| {'on' if client else 'off'} | {'true' if brk else 'false'} | "
                  f"{pct(acked, 50):.2f} ms | {pct(acked, 99):.2f} ms | {pct(replied, 50):.2f} ms | "
                  f"{pct(replied, 90):.2f} ms | {pct(replied, 99):.2f} ms | "
                  f"{statistics.fmean(replied):.2f} ms |")


if __name__ == "__main__":
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    asyncio.run(main())
