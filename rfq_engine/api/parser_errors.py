"""The HTTP parser's own errors in the API's JSON error format.

A request aiohttp cannot parse (a bad request line, a bad header, a line or header over the
limits) never reaches the application or its middlewares: aiohttp answers it from the
connection's protocol with a plain-text 400 (aiohttp issue 3287 asks for a hook; there is
none). ``install`` makes the connections of an application built by ``create_web_app``
answer those with the ``{"error", "reason"}`` body every other error of the API has, and
its security headers, closing the connection as aiohttp does. aiohttp still logs them,
and sends nothing when a response had started. Other aiohttp servers in the process keep
aiohttp's answer.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web, web_server
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from rfq_engine.api.security import SECURITY_HEADERS, SERVER
from rfq_engine.api.serialize import error

__all__ = ["install"]

JSON_ERRORS_KEY: web.AppKey[bool] = web.AppKey("json_parser_errors", bool)
_REASON_LIMIT = 200


def _json_errors(handler: RequestHandler) -> bool:
    """Whether ``handler``'s connection serves an application that asked for JSON errors."""
    manager = getattr(handler, "_manager", None)
    app = getattr(getattr(manager, "request_handler", None), "__self__", None)
    return isinstance(app, web.Application) and app.get(JSON_ERRORS_KEY, False)


def _reason(status: int, message: str | None) -> str:
    phrase = HTTPStatus(status).phrase
    if status >= 500:
        return phrase
    lines = (message or "").strip().splitlines()  # later lines echo the request's bytes
    first = lines[0].strip() if lines else ""
    return f"malformed HTTP request: {(first or phrase)[:_REASON_LIMIT]}"


class _JsonErrorHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises if sent
        if not _json_errors(self):
            return plain
        kind = "internal" if status >= 500 else "bad_request" if status == 400 else "error"
        response = error(status, kind, _reason(status, message))
        response.headers.update(SECURITY_HEADERS)
        response.headers["Server"] = SERVER
        response.force_close()
        return response


def install(web_app: web.Application) -> None:
    """Answer ``web_app``'s unparsable requests in JSON. aiohttp's ``Server`` builds each
    connection's protocol from its module's ``RequestHandler``: that name becomes a
    subclass that differs only in ``handle_error``, and only for marked applications."""
    web_app[JSON_ERRORS_KEY] = True
    setattr(web_server, "RequestHandler", _JsonErrorHandler)  # noqa: B010 (not an exported name)
