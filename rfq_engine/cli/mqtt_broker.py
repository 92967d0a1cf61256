"""``rfq broker-config --config rfq.toml --out DIR``: Mosquitto files for the configured MQTT dealers."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from dealer_adapters.mqtt.config import MqttBrokerConfig, MqttDealerConfig, read_env
from dealer_tools.brokerconf import BrokerFiles, BrokerTls, write_broker_files
from rfq_engine.config import AppConfig, ConfigError, load_config
from rfq_engine.domain import RfqError

__all__ = ["broker_config", "default_bind", "write_for_config"]


def default_bind(host: str) -> str | None:
    """Listen on ``host`` when it is an IP address (127.0.0.1 by default), else everywhere."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def write_for_config(
    config: AppConfig,
    out: Path,
    *,
    environ: Mapping[str, str],
    bind: str | None = None,
    run_as: str | None = None,
    tls: BrokerTls | None = None,
    log_file: Path | None = None,
    source: str = "rfq.toml",
) -> BrokerFiles:
    """The broker files for ``config``'s ``[mqtt]`` section and MQTT dealers.

    Raises ``ConfigError``/``ValidationError`` naming what is missing, or ``BrokerConfigError``.
    """
    broker: MqttBrokerConfig | None = config.mqtt
    dealers = [d for d in config.dealers if d.kind == "mqtt"]
    if broker is None:
        raise ConfigError(f"{source}: mqtt: no [mqtt] section (the broker connection)")
    if not dealers:
        raise ConfigError(f"{source}: dealers: no dealer has kind \"mqtt\"")
    if broker.password_env is None:
        raise ConfigError(f"{source}: mqtt.password_env: required to write the broker's password file")
    engine_password = read_env(broker.password_env, "mqtt.password_env", environ)
    passwords: dict[str, str] = {}
    for spec in dealers:
        settings = spec.settings()
        assert isinstance(settings, MqttDealerConfig)
        if settings.password_env is None:
            raise ConfigError(f"{source}: dealer {spec.id!r}: [dealers.mqtt].password_env: required to "
                              "write the broker's password file")
        field = f"dealer {spec.id!r}: [dealers.mqtt].password_env"
        passwords[spec.id] = read_env(settings.password_env, field, environ)
    return write_broker_files(out, broker=broker, engine_password=engine_password, dealer_passwords=passwords,
                              bind=bind if bind is not None else default_bind(broker.host), run_as=run_as,
                              tls=tls, log_file=log_file, source=source)


def broker_config(args: argparse.Namespace) -> int:
    tls = None
    if args.certfile or args.keyfile or args.cafile:
        if not (args.certfile and args.keyfile):
            print("rfq: --certfile and --keyfile go together", file=sys.stderr)
            return 1
        tls = BrokerTls(Path(args.certfile).resolve(), Path(args.keyfile).resolve(),
                        None if args.cafile is None else Path(args.cafile).resolve())
    try:
        config = load_config(args.config)
        files = write_for_config(
            config, Path(args.out), environ=os.environ, bind=args.bind, run_as=args.run_as, tls=tls,
            log_file=None if args.log_file is None else Path(args.log_file).resolve(), source=args.config)
    except RfqError as exc:  # ConfigError, ValidationError, BrokerConfigError
        from rfq_engine.cli.commands import report

        return report(exc)
    dealers = [d.id for d in config.dealers if d.kind == "mqtt"]
    print(f"wrote {files.config}\nwrote {files.password_file} (hashed)\nwrote {files.acl_file} "
          f"({len(dealers)} dealers: {', '.join(dealers)})\npersistence in {files.persistence_dir}/")
    print(f"start the broker: mosquitto -c {files.config}")
    return 0
