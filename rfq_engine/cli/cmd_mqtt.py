"""``rfq dealer`` (the reference dealer bot) and ``rfq broker-config`` (Mosquitto files)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    dealer = sub.add_parser(
        "dealer", help="run the reference dealer bot: one OTC desk quoting over MQTT",
        description="Connect to the broker as one dealer, answer rfq.new with quotes from a "
        "configurable model, confirm or reject awards, publish a retained status. Runs until "
        "SIGINT/SIGTERM. Example: deploy/mosquitto/dealer.example.toml.")
    dealer.add_argument("--config", required=True, help="dealer TOML file")
    dealer.set_defaults(handler=run_dealer)

    broker = sub.add_parser(
        "broker-config", help="write a Mosquitto config, password file and ACL for the MQTT dealers",
        description="Writes DIR/mosquitto.conf, DIR/passwd (hashed with mosquitto_passwd) and "
        "DIR/acl from the [mqtt] section and the kind=\"mqtt\" dealers of the config; start the "
        "broker with `mosquitto -c DIR/mosquitto.conf`. Passwords come from the environment "
        "variables named by [mqtt].password_env and each [dealers.mqtt].password_env.")
    broker.add_argument("--config", required=True, help="the engine's TOML config (rfq.toml)")
    broker.add_argument("--out", required=True, help="directory to write the files into")
    broker.add_argument("--bind", help="listen address (default: [mqtt].host when it is an IP "
                        "address, else every interface)")
    broker.add_argument("--run-as", help="user Mosquitto switches to when started as root "
                        "(default: Mosquitto's own, `mosquitto`)")
    broker.add_argument("--certfile", help="the broker's TLS certificate (enables TLS)")
    broker.add_argument("--keyfile", help="the broker's TLS private key")
    broker.add_argument("--cafile", help="CA bundle for client certificates (optional)")
    broker.add_argument("--log-file", help="broker log file (default: stderr)")
    broker.set_defaults(handler=run_broker_config)


def run_dealer(args: argparse.Namespace) -> int:
    from rfq_engine.cli.mqtt_dealer import run_dealer_file

    return run_dealer_file(args.config)


def run_broker_config(args: argparse.Namespace) -> int:
    from rfq_engine.cli.mqtt_broker import broker_config

    return broker_config(args)
