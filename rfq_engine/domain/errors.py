"""The one error tree: every error this project raises derives from ``RfqError``.

The categories under the root say what a caller can do about an error; the error classes
live next to the code that raises them and derive from a category. What a category means
to an HTTP client (status, ``error`` kind) and to a shell (exit code) is one table,
``rfq_engine.error_table.ERROR_TABLE``; the statuses are listed here for reference.

    RfqError                                                    (root; never raised itself)
    ├── InputError           422  bad input from a person, a file or a request; fix it and retry
    │   ├── ValidationError        (ValueError) names the field (``legs[1].strike``) and why
    │   │   └── engine.InvalidRequest  a request the engine cannot run (unknown dealer or mandate)
    │   └── hedging.cron.CronError (ValueError) a schedule or time zone that does not parse
    ├── NotFound             404  the thing named does not exist
    ├── Forbidden            403  this actor may not do this (e.g. approve one's own RFQ)
    ├── Conflict             409  the thing is not in a state that allows this
    ├── Unavailable          503  something needed now cannot be reached or takes no new work; retry later
    │   ├── domain.pricing.PriceUnavailable     the snapshot lacks an input of a price
    │   ├── pricing.ReferenceUnavailable        no fresh reference for the package
    │   ├── dealer_adapters.DealerUnavailable   the transport could not take a message (nothing sent)
    │   ├── mqtt.connection.NotConnected        no broker connection: the message was not handed over
    │   └── fix.session.NotSent                 no FIX session, or its number not stored: nothing sent
    ├── SetupError           500  the process cannot run as configured (CLI: fix the config)
    │   ├── config.ConfigError                  the config file is missing, not TOML or invalid
    │   ├── ccxt.exchange.ExchangeSetupError    a ccxt dealer cannot get its exchange
    │   └── dealer_tools.brokerconf.BrokerConfigError  the Mosquitto files cannot be written
    ├── StoreFault           500  a durable record cannot be read, written or trusted
    │   ├── store.StoreError                    the audit store failed (open, lock, write, chain)
    │   │   └── store.outage.WriterFenced       another writer has the lock, or the head moved
    │   ├── store.checkpoint.CheckpointError    the checkpoint log (or a witness) is unreadable
    │   ├── domain.eventcodec.EventDecodeError  a stored payload does not fit its event type
    │   └── dealer_adapters.journal.JournalError  an adapter's execution journal is unreadable
    │       └── simulated.ledger.LedgerError    (the simulated desk's ledger)
    ├── WireError            500  a dealer-wire message broke its contract, or its delivery is unknown
    │   ├── mqtt.envelope.EnvelopeError         an MQTT message fails verification
    │   ├── rest.parsing.DeskAnswerError        a REST desk's answer cannot be read
    │   ├── mqtt.connection.DeliveryUncertain   (ConnectionError) the broker may or may not have it
    │   ├── ccxt.route.AuthLostAfterSend        credentials refused after an order left: outcome unknown
    │   └── fix.session.SendUnknown             the FIX connection failed mid-write: it may have left
    ├── IllegalTransition    500  a state change the transition table does not allow: a bug
    └── engine.EngineError        the engine's refusals (``rfq_engine/engine/errors.py``)
        ├── UnknownRfq       404  (KeyError) no RFQ with that id
        ├── UnknownExecution 404  (KeyError) the RFQ has no award with that execution id
        ├── NotPermitted     403  the actor may not do this
        ├── InvalidState     409  the RFQ is not in a state that allows this
        ├── InvalidRequest   422  (also a ValidationError, above)
        ├── EngineHalted     503  new RFQs are refused (the engine is stopping or halted)
        └── EngineBusy       503  ``[engine] max_live_rfqs`` RFQs are live (``Retry-After``)

The engine's errors derive from the category whose status they share (NotFound,
Forbidden, Conflict, InputError, Unavailable); three of them keep their own row in the table
for their wording. A second base such as ``ValueError``,
``KeyError`` or ``ConnectionError`` stays where code catches the error by it.

A 500 row is a fault: the API logs it and answers "internal error" without its message;
the CLI prints the message and exits 1. An error the table does not list (a bug, such as
``IllegalTransition``) is a 500 too, and the CLI lets its traceback through. Private
exceptions (``_Refused``, ``_Overflow``...) are control flow inside one module and never
leave it.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "IllegalTransition",
    "InputError",
    "NotFound",
    "RfqError",
    "SetupError",
    "StoreFault",
    "Unavailable",
    "ValidationError",
    "WireError",
]


class RfqError(Exception):
    """Base of every error this project raises (see the tree above)."""


class InputError(RfqError):
    """Bad input from a person, a file or a request: fixing the input fixes it."""


class NotFound(RfqError):
    """The thing named (an RFQ, an award) does not exist."""


class Forbidden(RfqError):
    """The actor may not do this, whatever the state."""


class Conflict(RfqError):
    """The thing is not in a state that allows this."""


class Unavailable(RfqError):
    """Something needed now cannot be reached or takes no new work; a later retry may work."""


class SetupError(RfqError):
    """The process cannot run as configured (a config file, a dealer's exchange, the broker)."""


class StoreFault(RfqError):
    """A durable record (the audit store, its checkpoint, an adapter's journal) cannot be
    read, written or trusted."""


class WireError(RfqError):
    """A message on a dealer wire broke its contract, or whether it was delivered is unknown."""


class ValidationError(InputError, ValueError):
    """Input that does not satisfy the model; ``field`` is a dotted path like ``legs[1].strike``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def nested(self, prefix: str) -> ValidationError:
        """The same error with its field path prefixed (``legs[0]`` + ``strike``)."""
        return ValidationError(f"{prefix}.{self.field}" if self.field else prefix, self.reason)


class IllegalTransition(RfqError):
    """An RFQ asked to move between two states the transition table does not connect."""

    def __init__(self, rfq_id: str, current: str, target: str) -> None:
        super().__init__(f"rfq {rfq_id}: illegal transition {current} -> {target}")
        self.rfq_id = rfq_id
        self.current = current
        self.target = target
