"""Dealers over MQTT: the engine's adapter, the envelope, the config and the connection.

The wire contract is docs/dealer-protocol.md. Modules:

- ``config``: ``MqttBrokerConfig`` (the ``[mqtt]`` section) and ``MqttDealerConfig``
  (``[dealers.mqtt]``);
- ``envelope``: pure topic names, signing and verification, body parsing;
- ``connection``: one resilient aiomqtt connection (persistent session, QoS 1,
  TCP_NODELAY, reconnect with capped backoff, acknowledge-after-hand-off);
- ``adapter``: ``MqttDealers``, the engine's ``DealerAdapter`` for every MQTT dealer.

The far side of the wire lives in its own package, ``dealer_tools``: the reference dealer
bot (``dealer_tools.bot``, ``rfq dealer``) and the Mosquitto config generator
(``dealer_tools.brokerconf``, ``rfq broker-config``); they use ``envelope``, ``config``
and ``connection`` from here.

Importing this package (or ``config``/``envelope``) does not import aiomqtt; ``adapter``,
``connection`` do.
"""

from dealer_adapters.mqtt.config import MqttBrokerConfig, MqttDealerConfig, MqttTlsConfig

__all__ = ["MqttBrokerConfig", "MqttDealerConfig", "MqttTlsConfig"]
