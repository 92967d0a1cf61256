"""Dealers over MQTT: the engine's adapter, the envelope, and the reference dealer bot.

The wire contract is docs/dealer-protocol.md. Modules:

- ``config``: ``MqttBrokerConfig`` (the ``[mqtt]`` section) and ``MqttDealerConfig``
  (``[dealers.mqtt]``);
- ``envelope``: pure topic names, signing and verification, body parsing;
- ``connection``: one resilient aiomqtt connection (persistent session, QoS 1,
  TCP_NODELAY, reconnect with capped backoff, acknowledge-after-hand-off);
- ``adapter``: ``MqttDealers``, the engine's ``DealerAdapter`` for every MQTT dealer;
- ``bot``: ``DealerBot``, the reference dealer (``rfq dealer``);
- ``brokerconf``: Mosquitto config, password and ACL files (``rfq broker-config``).

Importing this package (or ``config``/``envelope``) does not import aiomqtt; ``adapter``,
``connection`` and ``bot`` do.
"""

from dealer_adapters.mqtt.config import MqttBrokerConfig, MqttDealerConfig, MqttTlsConfig

__all__ = ["MqttBrokerConfig", "MqttDealerConfig", "MqttTlsConfig"]
