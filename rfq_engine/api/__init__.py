"""The HTTP API, web UI and operations endpoints of ``rfq serve`` (aiohttp).

Import ``rfq_engine.api.app.create_web_app``; this package module stays empty. Its
``[api]`` config section is ``rfq_engine.config.ApiConfig``: the config sits below the API.
"""
