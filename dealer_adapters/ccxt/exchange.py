"""Building one ccxt exchange instance for a dealer: the only place ``ccxt`` is imported.

``import ccxt.async_support`` costs about half a second and ~100 MB, so it happens here,
inside ``create_exchange``, which runs only when a configured ccxt dealer starts. Importing
the factory, ``rfq --help`` or a config check never pays it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dealer_adapters.ccxt.config import CcxtDealerConfig
from rfq_engine.domain.errors import SetupError

__all__ = ["ExchangeSetupError", "create_exchange"]


class ExchangeSetupError(SetupError):
    """The dealer cannot get an exchange: unknown id, missing credentials, no sandbox."""


def _secret(name: str | None, environ: Mapping[str, str], field: str) -> str | None:
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        raise ExchangeSetupError(f"{field}: environment variable {name} is not set")
    return value


def create_exchange(config: CcxtDealerConfig, environ: Mapping[str, str] | None = None) -> Any:
    """A new ``ccxt.async_support`` exchange for ``config`` (credentials from ``environ``).

    Order of settings: constructor options, then sandbox mode (which swaps in the venue's
    test URLs), then the ``urls`` override merged into ``urls['api']`` (a testnet or a
    private gateway wins over both).
    """
    import ccxt.async_support as ccxt_async  # lazy: see the module docstring

    env = os.environ if environ is None else environ
    if config.exchange not in ccxt_async.exchanges:
        raise ExchangeSetupError(f"exchange: {config.exchange!r} is not a ccxt exchange id")
    settings: dict[str, Any] = {
        "enableRateLimit": config.enable_rate_limit,
        "timeout": config.timeout_ms,
        "options": dict(config.options),
    }
    for key, name, field in (("apiKey", config.api_key_env, "api_key_env"),
                             ("secret", config.secret_env, "secret_env"),
                             ("password", config.password_env, "password_env")):
        value = _secret(name, env, field)
        if value is not None:
            settings[key] = value
    exchange = getattr(ccxt_async, config.exchange)(settings)
    if config.sandbox:
        try:
            exchange.set_sandbox_mode(True)
        except Exception as exc:  # ccxt.NotSupported: no test URLs for this venue
            raise ExchangeSetupError(f"sandbox: {exc}") from exc
    if config.urls:
        api = exchange.urls.get("api")
        if isinstance(api, dict):
            exchange.urls["api"] = {**api, **config.urls}
        elif len(config.urls) == 1:
            exchange.urls["api"] = next(iter(config.urls.values()))
        else:
            raise ExchangeSetupError("urls: this venue has one API URL; give one entry")
    return exchange
