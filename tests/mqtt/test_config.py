"""MQTT configuration: the [mqtt] section, [dealers.mqtt], the factory, the broker files."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from dealer_adapters.factory import DealerSpec, build_adapters
from dealer_adapters.mqtt.adapter import QUERY_UNKNOWN_REASON, MqttDealers
from dealer_adapters.mqtt.config import MqttBrokerConfig, MqttDealerConfig
from dealer_adapters.protocol import DealerUnavailable, ExecutionState
from dealer_adapters.simulated import SimulatedDealers
from dealer_tools.brokerconf import (
    TEMPLATES,
    render_acl,
    render_config,
    template_text,
    write_broker_files,
)
from rfq_engine.config import ConfigError, parse_config
from rfq_engine.domain import DealerId, ExecutionId, RfqClosed, RfqId, ValidationError
from tests.engine.conftest import snapshot

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 32


def app_config(*, mqtt: dict[str, Any] | None, dealers: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "market": {"spot": {"BTC": "40000"}, "vol": {"BTC": "0.5"}, "rate": "0.05"},
        "mandates": {"treasury": {"underlyings": ["BTC"], "instruments": ["future"], "max_tenor_days": 90,
                                  "dealers": {d["id"]: {"credit_limit": "1000000"} for d in dealers}}},
        "dealers": dealers,
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    return data


def mqtt_dealer(dealer_id: str) -> dict[str, Any]:
    env = f"SECRET_{dealer_id.upper().replace('-', '_')}"
    return {"id": dealer_id, "kind": "mqtt", "mqtt": {"secret_env": env}}


@pytest.mark.parametrize("prefix", ["", "rfq/+/v1", "rfq/#", "/rfq", "rfq/", "rfq//v1", "$SYS/rfq", "rfq v1"])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(PydanticValidationError, match="prefix"):
        MqttBrokerConfig(prefix=prefix)


def test_broker_settings_are_strict() -> None:
    assert MqttBrokerConfig(prefix="desk/rfq.v1").prefix == "desk/rfq.v1"
    with pytest.raises(PydanticValidationError, match="reconnect_max_ms"):
        MqttBrokerConfig(reconnect_initial_ms=500, reconnect_max_ms=100)
    with pytest.raises(PydanticValidationError, match="Extra inputs"):
        MqttBrokerConfig.model_validate({"hots": "x"})
    with pytest.raises(PydanticValidationError, match="environment variable name"):
        MqttBrokerConfig(password_env="MY-PASSWORD")
    with pytest.raises(PydanticValidationError, match="name"):
        MqttBrokerConfig(username="rfq engine")
    with pytest.raises(PydanticValidationError, match="cert_file and key_file"):
        MqttBrokerConfig.model_validate({"tls": {"cert_file": "/c.pem"}})


def test_secrets_come_from_the_environment() -> None:
    config = MqttDealerConfig(secret_env="DESK_SECRET")
    assert config.secret("desk-a", {"DESK_SECRET": SECRET}) == SECRET.encode()
    with pytest.raises(ValidationError, match="environment variable DESK_SECRET is not set"):
        config.secret("desk-a", {})
    with pytest.raises(ValidationError, match="at least 16"):
        config.secret("desk-a", {"DESK_SECRET": "short"})
    assert MqttBrokerConfig().password({}) is None
    with pytest.raises(ValidationError, match=r"mqtt\.password_env: environment variable PW is not set"):
        MqttBrokerConfig(password_env="PW").password({})


def test_the_app_config_needs_an_mqtt_section_for_mqtt_dealers() -> None:
    with pytest.raises(ConfigError,
                       match=r"mqtt: dealer\(s\) desk-a have kind \"mqtt\": add an \[mqtt\] section"):
        parse_config(app_config(mqtt=None, dealers=[mqtt_dealer("desk-a")]))
    with pytest.raises(ConfigError, match=r"\[dealers.mqtt\].secret_env: Field required"):
        parse_config(app_config(mqtt={}, dealers=[{"id": "desk-a", "kind": "mqtt"}]))
    config = parse_config(app_config(mqtt={"port": 18883}, dealers=[mqtt_dealer("desk-a")]))
    assert config.mqtt is not None and config.mqtt.port == 18883


def test_the_example_configs_validate() -> None:
    example = tomllib.loads((ROOT / "deploy/mosquitto/rfq.mqtt.example.toml").read_text())
    dealers = example["dealers"]
    config = parse_config(app_config(mqtt=example["mqtt"], dealers=dealers))
    assert [d.id for d in config.dealers] == ["desk-a", "desk-b"]
    from rfq_engine.cli.mqtt_dealer import load_dealer_file

    bot = load_dealer_file(ROOT / "deploy/mosquitto/dealer.example.toml")
    assert bot.dealer.id == "desk-a" and bot.mqtt.password_env == "RFQ_DEALER_MQTT_PASSWORD"


def test_the_factory_puts_every_mqtt_dealer_on_one_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = [DealerSpec.model_validate(d) for d in
             (mqtt_dealer("desk-a"), mqtt_dealer("desk-b"), {"id": "sim", "kind": "simulated"})]
    monkeypatch.setenv("SECRET_DESK_A", SECRET)
    monkeypatch.setenv("SECRET_DESK_B", SECRET)
    with pytest.raises(ValueError, match=r"desk-a, desk-b have kind 'mqtt' but there is no \[mqtt\] section"):
        build_adapters(specs, market=snapshot)
    adapters = build_adapters(specs, market=snapshot, mqtt=MqttBrokerConfig())
    mqtt = [a for a in adapters if isinstance(a, MqttDealers)]
    assert len(mqtt) == 1 and mqtt[0].dealer_ids == ("desk-a", "desk-b")
    assert any(isinstance(a, SimulatedDealers) for a in adapters)
    monkeypatch.delenv("SECRET_DESK_B")
    with pytest.raises(ValidationError, match=r"dealer 'desk-b'.*SECRET_DESK_B is not set"):
        build_adapters(specs, market=snapshot, mqtt=MqttBrokerConfig())


async def test_an_adapter_not_connected_refuses_sends_and_cannot_query() -> None:
    adapter = MqttDealers(MqttBrokerConfig(), {DealerId("desk-a"): MqttDealerConfig(secret_env="S")},
                          environ={"S": SECRET})
    assert not adapter.is_online(DealerId("desk-a"))
    with pytest.raises(DealerUnavailable, match="not started"):
        await adapter.send_closed(DealerId("desk-a"), RfqClosed(RfqId("r"), "filled", False))
    with pytest.raises(DealerUnavailable, match="not served"):
        await adapter.send_closed(DealerId("desk-z"), RfqClosed(RfqId("r"), "filled", False))
    lookup = await adapter.query_execution(DealerId("desk-a"), ExecutionId("e-1"))
    assert lookup.state is ExecutionState.UNKNOWN and lookup.reason == QUERY_UNKNOWN_REASON


def test_the_acl_gives_each_dealer_only_its_own_topics() -> None:
    acl = render_acl("rfq/v1", "rfq-engine", ["desk-a", "desk-b"])
    rules = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert rules == [
        "user rfq-engine", "topic readwrite rfq/v1/#",
        "user desk-a", "topic read rfq/v1/dealers/desk-a/rfq", "topic read rfq/v1/dealers/desk-a/award",
        "topic write rfq/v1/dealers/desk-a/quote", "topic write rfq/v1/dealers/desk-a/execution",
        "topic write rfq/v1/dealers/desk-a/status",
        "user desk-b", "topic read rfq/v1/dealers/desk-b/rfq", "topic read rfq/v1/dealers/desk-b/award",
        "topic write rfq/v1/dealers/desk-b/quote", "topic write rfq/v1/dealers/desk-b/execution",
        "topic write rfq/v1/dealers/desk-b/status",
    ]
    with pytest.raises(ValueError, match="dealer id"):
        render_acl("rfq/v1", "rfq-engine", ["desk a"])


def test_the_broker_config_locks_the_broker_down() -> None:
    text = render_config(port=1883, bind="127.0.0.1", password_file=Path("/x/passwd"),
                         acl_file=Path("/x/acl"), persistence_dir=Path("/x/data"), max_packet_size=66560)
    settings = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in text.splitlines()
                if line and not line.startswith("#") and " " in line}
    assert settings["listener"] == "1883 127.0.0.1"
    assert settings["set_tcp_nodelay"] == "true"
    assert settings["allow_anonymous"] == "false"
    assert settings["password_file"] == "/x/passwd" and settings["acl_file"] == "/x/acl"
    assert settings["use_username_as_clientid"] == "true"
    assert settings["persistence"] == "true" and settings["persistence_location"] == "/x/data/"
    # a snapshot every 60 s and at shutdown, not a rewrite and fsync of the store per change
    assert settings["autosave_on_changes"] == "false" and settings["autosave_interval"] == "60"
    assert settings["max_inflight_messages"] == "1000"
    assert "user" not in settings and "certfile" not in settings


def settings_of(text: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in text.splitlines()
            if line and not line.startswith("#") and " " in line}


def test_the_broker_config_persistence_is_a_choice() -> None:
    paths = {"password_file": Path("/x/passwd"), "acl_file": Path("/x/acl"),
             "persistence_dir": Path("/x/data")}
    every = settings_of(render_config(port=1883, bind=None, max_packet_size=66560, autosave_s=None,
                                      max_inflight=50, **paths))
    assert every["autosave_on_changes"] == "true" and every["autosave_interval"] == "1"
    assert every["max_inflight_messages"] == "50" and every["set_tcp_nodelay"] == "true"
    timed = settings_of(render_config(port=1883, bind=None, max_packet_size=66560, autosave_s=5, **paths))
    assert timed["autosave_on_changes"] == "false" and timed["autosave_interval"] == "5"
    with pytest.raises(ValueError, match="autosave_s"):
        render_config(port=1883, bind=None, max_packet_size=66560, autosave_s=0, **paths)


def test_the_templates_in_deploy_are_the_packaged_ones() -> None:
    for name in TEMPLATES:
        assert (ROOT / "deploy/mosquitto" / name).read_text(encoding="utf-8") == template_text(name), name


@pytest.mark.slow
def test_the_password_file_is_hashed_and_private(tmp_path: Path) -> None:
    files = write_broker_files(tmp_path / "b", broker=MqttBrokerConfig(port=1999),
                               engine_password="engine-pw-1", dealer_passwords={"desk-a": "desk-a-pw-1"})
    text = files.password_file.read_text()
    assert [line.split(":", 1)[0] for line in text.splitlines()] == ["rfq-engine", "desk-a"]
    assert "engine-pw-1" not in text and "desk-a-pw-1" not in text and "$7$" in text
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o600
    assert files.persistence_dir.is_dir()
    assert f"password_file {files.password_file}" in files.config.read_text()


async def test_a_full_incoming_queue_is_noticed_so_the_link_reconnects() -> None:
    """The queue bound: a message that does not fit is refused (not acknowledged) and the link
    marks itself for a reconnect, after which the broker redelivers it."""
    from dealer_adapters.mqtt.connection import MqttLink

    link = MqttLink(MqttBrokerConfig(queue_bound=10), username="u", password=None, client_id="u",
                    subscriptions=[], on_message=lambda message, at: None)
    client = link._client_for_session()
    queue = client._queue
    for _ in range(10):
        queue.put_nowait(None)  # type: ignore[arg-type]
    assert not link._overflowed
    client._on_message(client._client, None, _paho_message())  # what paho calls on a PUBLISH
    assert queue.qsize() == 10 and link._overflowed


def _paho_message() -> Any:
    import paho.mqtt.client as paho

    message = paho.MQTTMessage(mid=7, topic=b"rfq/v1/dealers/desk-a/quote")
    message.qos = 1
    return message
