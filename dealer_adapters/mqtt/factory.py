"""Registers ``kind = "mqtt"``: one broker connection (one ``MqttDealers``) for every MQTT
desk, configured by the process's ``[mqtt]`` section. Validating a ``[dealers.mqtt]``
table imports no aiomqtt."""

from __future__ import annotations

from collections.abc import Mapping

from dealer_adapters.kind import BuildContext, DealerKind
from dealer_adapters.mqtt.config import MqttBrokerConfig, MqttDealerConfig
from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId

__all__ = ["KIND"]


def build(dealers: Mapping[DealerId, MqttDealerConfig], context: BuildContext) -> DealerAdapter:
    if not isinstance(context.mqtt, MqttBrokerConfig):
        ids = ", ".join(dealers)
        raise ValueError(f"dealer(s) {ids} have kind 'mqtt' but there is no [mqtt] section "
                         "(the broker connection)")
    from dealer_adapters.mqtt.adapter import MqttDealers

    return MqttDealers(context.mqtt, dealers)


KIND = DealerKind("mqtt", MqttDealerConfig, build)
