"""The fake venues' HTTP plumbing: an aiohttp app on 127.0.0.1 and a free port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["serve"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler, *paths: str) -> tuple[web.AppRunner, str]:
    """Serve ``handler`` for every method on ``paths`` (aiohttp route patterns); the runner
    (``await runner.cleanup()`` stops it) and the base URL."""
    app = web.Application()
    for path in paths:
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
