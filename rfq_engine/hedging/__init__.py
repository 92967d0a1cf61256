"""Hedge programs: production forecast, hedge sizing under the mandate, scheduled rolls,
positions and scenarios (``docs/hedging.md``).

Pure modules (no I/O, no engine): ``cron``, ``forecast``, ``scenario``, ``program`` (config
models), ``targets``, ``positions``, ``planner``. ``records`` reads the audit store;
``scheduler`` runs programs through a live engine (hosted by ``rfq serve``).

This package module imports nothing, so loading the config models stays light.
"""
