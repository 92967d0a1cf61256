"""Tools for the far side of the wire: what a dealer desk and a broker operator run.

Not part of the engine: the engine never imports this package (an ``import-linter``
contract in pyproject.toml), and this package never imports the engine. It speaks the wire
protocol (docs/dealer-protocol.md) through ``dealer_adapters.mqtt``'s envelope, config and
connection, and prices with the simulated desks' model (``dealer_adapters.simulated``).

- ``bot``: ``DealerBot``, the reference dealer desk (``rfq dealer --config dealer.toml``);
- ``brokerconf``: the Mosquitto config, password and ACL files for the MQTT dealers
  (``rfq broker-config``), from the templates in ``templates/``.

Importing this package does not import aiomqtt; ``bot`` does.
"""
