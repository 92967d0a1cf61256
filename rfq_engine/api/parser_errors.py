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

from aiohttp import http_exceptions, web, web_server
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from rfq_engine.api.security import SECURITY_HEADERS, SERVER
from rfq_engine.api.serialize import error

__all__ = ["install"]

JSON_ERRORS_KEY: web.AppKey[bool] = web.AppKey("json_parser_errors", bool)


def _json_errors(handler: RequestHandler) -> bool:
    """Whether ``handler``'s connection serves an application that asked for JSON errors."""
    manager = getattr(handler, "_manager", None)
    app = getattr(getattr(manager, "request_handler", None), "__self__", None)
    return isinstance(app, web.Application) and app.get(JSON_ERRORS_KEY, False)


_WHAT = (  # the most specific first; said in our words: aiohttp's messages quote the request
    (http_exceptions.LineTooLong, "a request line or header is too long"),
    (http_exceptions.BadHttpMethod, "not an HTTP request, or an invalid method"),
    (http_exceptions.BadStatusLine, "an invalid request line"),
    (http_exceptions.InvalidURLError, "an invalid request target"),
    (http_exceptions.InvalidHeader, "an invalid header"),
    (http_exceptions.TransferEncodingError, "an invalid transfer encoding"),
    (http_exceptions.ContentLengthError, "an invalid Content-Length"),
    (http_exceptions.BadHttpMessage, "an invalid header or framing"),
)


def _reason(status: int, exc: BaseException | None) -> str:
    """What was wrong, without a byte of the request (it may hold a token)."""
    if status >= 500:
        return HTTPStatus(status).phrase
    what = next((text for kind, text in _WHAT if isinstance(exc, kind)), "refused by the HTTP parser")
    return f"malformed HTTP request: {what}"


class _JsonErrorHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises if sent
        if not _json_errors(self):
            return plain
        kind = "internal" if status >= 500 else "bad_request" if status == 400 else "error"
        response = error(status, kind, _reason(status, exc))
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
