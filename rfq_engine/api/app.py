"""The aiohttp application of ``rfq serve``: API under ``/api/v1``, web UI, ops endpoints.

Errors are JSON ``{"error", "reason", "field"?}``: 400 malformed (also a request the HTTP
parser refuses: ``parser_errors``), 401, 413 and 405 from aiohttp; an ``RfqError`` gets the
status of its row in ``rfq_engine.error_table`` (403, 404, 409, 422 naming the field, 503).
Bad input never becomes a 500 (``body`` reads hostile JSON).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest

from rfq_engine.api import audit, executions, hedge, ops, parser_errors, rfqs, risk, security, stream
from rfq_engine.api.idempotency import IdempotencyMap
from rfq_engine.api.metrics import Metrics
from rfq_engine.api.openapi import openapi_document
from rfq_engine.api.serialize import error, json_response
from rfq_engine.config import ApiConfig
from rfq_engine.error_table import INTERNAL, outcome_of, public_reason
from rfq_engine.wiring import App

__all__ = ["RedactingAccessLogger", "create_web_app"]

log = structlog.get_logger("rfq_engine.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_dir() -> Path:
    return Path(str(resources.files("rfq_engine.api").joinpath("static")))


class RedactingAccessLogger(AccessLogger):
    """The access log without the WebSocket's ``?token=`` (browsers cannot send headers on
    a WebSocket, so the stream takes its bearer token in the query string)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request is not None and "token" in request.query:
            request = request.clone(rel_url=request.rel_url.update_query(token="***"))
        super().log(request, response, time)


_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _as_json(request: web.Request, exc: web.HTTPException) -> web.StreamResponse | None:
    """aiohttp's own plain-text errors under ``/api/`` (a body over the size limit, an
    unknown route, a wrong method) in the API's JSON error format."""
    if exc.status < 400 or exc.content_type == "application/json" \
            or not request.path.startswith("/api/"):
        return None
    response = error(exc.status, _KINDS.get(exc.status, "error"), exc.text or exc.reason)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        converted = _as_json(request, exc)
        if converted is None:
            raise
        return converted
    except Exception as exc:  # an RfqError by its row in the error table; anything else is a 500
        outcome = outcome_of(exc) or INTERNAL
        if outcome.fault:
            log.exception("api.unhandled", path=request.path, method=request.method)
        response = error(outcome.status, outcome.kind, *public_reason(exc, outcome))
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response


async def _openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_static_dir() / "index.html")


async def _revalidate_ui(request: web.Request, response: web.StreamResponse) -> None:
    """The web UI's modules import each other: a browser must never mix cached files of two
    versions, so it revalidates each (a 304 when unchanged)."""
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"


def create_web_app(app: App, api: ApiConfig, *, metrics: Metrics | None = None) -> web.Application:
    web_app = web.Application(middlewares=[errors], client_max_size=1024 * 1024)
    security.install(web_app, api)  # authentication after the errors; security headers
    parser_errors.install(web_app)  # the HTTP parser's 400s in JSON too
    web_app[rfqs.APP_KEY] = app
    web_app[rfqs.IDEMPOTENCY_KEY] = IdempotencyMap(ttl_s=api.idempotency_ttl_s,
                                                   max_keys=api.idempotency_keys)
    web_app[ops.METRICS_KEY] = metrics or Metrics(app.engine)
    web_app[stream.QUEUE_KEY] = api.stream_queue
    web_app[stream.STALL_KEY] = api.stream_stall_s
    web_app.add_routes(rfqs.routes)
    web_app.add_routes(executions.routes)
    web_app.add_routes(audit.routes)
    web_app.add_routes(ops.routes)
    web_app.add_routes(stream.routes)
    web_app.add_routes(hedge.routes)
    risk.install(web_app, app)  # /api/v1/hedge/risk, and the risk watch started with the web app
    web_app.router.add_get("/api/v1/openapi.json", _openapi)
    web_app.router.add_get("/", _index)
    web_app.on_response_prepare.append(_revalidate_ui)
    static = _static_dir()
    if static.is_dir():
        web_app.router.add_static("/static/", static)
    return web_app
