"""Process-wide logging: structlog for our code, the stdlib's loggers routed through it.

Why this shape:

- one line per event, JSON when the output is a file or a pipe (log shippers,
  ``jq``), a readable console rendering when a person watches a terminal;
- UTC ISO 8601 timestamps with microseconds, as everywhere else in the system;
- context variables merged into every line, so ``with bind_rfq(rfq_id):`` tags every
  line an RFQ's flow logs, in every task it spawns (tasks copy the context);
- secrets never reach a log: values under keys named like secret, token, password,
  key, credential or authorization are replaced, at any depth of nesting;
- the stdlib's loggers (aiomqtt, sqlalchemy, asyncio) go through the same processors
  and renderer, so the output is one format.

``configure_logging`` is idempotent: calling it again replaces the handler it installed
(a new level, stream or format) and never duplicates output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from rfq_engine.domain.values import format_ts

__all__ = [
    "REDACTED",
    "add_timestamp",
    "bind_rfq",
    "configure_logging",
    "get_logger",
    "redact_secrets",
]

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"secret|token|passw(or)?d|passphrase|credential|authori[sz]ation|cookie"
    r"|(private|api|access|signing)[_\-]?key"
    r"|(^|[_.\-])(pwd|key|keys)($|[_.\-])",
    re.IGNORECASE,
)
"""Key names whose values are secret: ``hmac_secret``, ``api_key``, ``token``, ``password``...

``key`` matches only as a whole word part (``api_key``, ``key``, ``keys``), not inside
``monkey`` or ``keyword``; ``rfq_id``, ``private_side`` and ``sig`` (an HMAC is public
on the wire) are not secrets and pass.
"""

_HANDLER_MARK = "_rfq_engine_handler"


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret(k) else _redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, depth + 1) for v in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace the values of secret-named keys, nested ones included."""
    for key in list(event_dict):
        if key == "event":
            continue
        if _is_secret(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def add_timestamp(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """UTC ``2026-11-21T10:00:00.123456Z``: always six digits (``isoformat`` drops zeros)."""
    event_dict["timestamp"] = format_ts(datetime.now(UTC))
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_timestamp,
        redact_secrets,
    ]


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR")
    return number


def configure_logging(
    level: str | int = "INFO",
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger to write to ``stream``.

    ``json=None`` picks JSON lines unless ``stream`` is a terminal; ``True``/``False`` force.
    ``stream`` defaults to ``sys.stderr`` as it is at call time (so pytest's capture works).
    """
    out = sys.stderr if stream is None else stream
    use_json = json if json is not None else not _isatty(out)
    number = _level_number(level)
    shared = _shared_processors()
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
        final: list[Processor] = [structlog.processors.dict_tracebacks, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))
        final = [renderer]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger used before configure_logging (an import-time log line)
        # must still pick up this configuration rather than keep the default one.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (``log.info("event", key=value)``)."""
    return structlog.get_logger(name)


@contextmanager
def bind_rfq(rfq_id: str, **extra: Any) -> Iterator[None]:
    """Put ``rfq_id`` (and ``extra``) on every log line inside the block, then restore."""
    with structlog.contextvars.bound_contextvars(rfq_id=rfq_id, **extra):
        yield
