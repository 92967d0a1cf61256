"""The HTTP API, web UI and operations endpoints of ``rfq serve`` (aiohttp).

Import ``rfq_engine.api.app.create_web_app``; this package module stays empty so that
``rfq_engine.config`` can import ``rfq_engine.api.config`` without pulling in aiohttp.
"""
