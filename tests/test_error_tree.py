"""The one error tree and its one table: every public error class derives from ``RfqError``,
the tree in ``rfq_engine/domain/errors.py`` names every one with the status of its row, and
the API's middleware and the CLI answer by that row."""

from __future__ import annotations

import importlib
import io
import pkgutil
import re
from contextlib import redirect_stderr
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import dealer_adapters
import dealer_tools
import rfq_engine
from rfq_engine.api.app import errors
from rfq_engine.cli.commands import report
from rfq_engine.config import ConfigError
from rfq_engine.domain import errors as tree
from rfq_engine.domain.errors import IllegalTransition, RfqError, ValidationError
from rfq_engine.engine.errors import EngineHalted, InvalidState, NotPermitted, UnknownRfq
from rfq_engine.error_table import ERROR_TABLE, INTERNAL, outcome_of
from rfq_engine.store.base import StoreError


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (rfq_engine, dealer_adapters, dealer_tools):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, type) and issubclass(value, BaseException) \
                        and value.__module__ == module.__name__ and not name.startswith("_"):
                    found[name] = value
    return found


CLASSES = _error_classes()


def test_every_public_error_derives_from_the_root() -> None:
    outside = sorted(n for n, cls in CLASSES.items() if not issubclass(cls, RfqError))
    assert outside == []
    assert len(CLASSES) >= 30


def test_the_tree_names_every_error_with_the_status_of_its_row() -> None:
    doc = tree.__doc__ or ""
    named = set(re.findall(r"[─└├]── (?:[\w.]+\.)?(\w+)", doc))
    assert named == set(CLASSES) - {"RfqError"}
    for name, status in re.findall(r"── (?:[\w.]+\.)?(\w+)\s+(\d{3})\b", doc):
        assert (outcome_of(_instance(CLASSES[name])) or INTERNAL).status == int(status), name


def _instance(cls: type[BaseException]) -> BaseException:
    instance: BaseException = cls.__new__(cls)
    return instance


def test_every_row_is_an_error_of_the_tree() -> None:
    assert all(issubclass(cls, RfqError) for cls in ERROR_TABLE)
    categories = [tree.InputError, tree.NotFound, tree.Forbidden, tree.Conflict, tree.Unavailable,
                  tree.SetupError, tree.StoreFault, tree.WireError]
    assert all(cls in ERROR_TABLE for cls in categories)


@pytest.mark.parametrize(("raised", "status", "body"), [
    (ValidationError("legs[0].strike", "must be positive"), 422,
     {"error": "validation", "reason": "must be positive", "field": "legs[0].strike"}),
    (UnknownRfq("R1"), 404, {"error": "not_found", "reason": "no such RFQ"}),
    (NotPermitted("self-approval"), 403, {"error": "forbidden", "reason": "self-approval"}),
    (InvalidState("not pending"), 409, {"error": "conflict", "reason": "not pending"}),
    (EngineHalted("halted: desk down"), 503, {"error": "halted", "reason": "halted: desk down"}),
    (StoreError("disk full"), 500, {"error": "internal", "reason": "internal error; see the server log"}),
    (IllegalTransition("R1", "open", "open"), 500,
     {"error": "internal", "reason": "internal error; see the server log"}),
    (KeyError("x"), 500, {"error": "internal", "reason": "internal error; see the server log"}),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None)
async def test_the_api_answers_by_the_row(raised: BaseException, status: int, body: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise raised

    app = web.Application(middlewares=[errors])
    app.router.add_get("/api/v1/x", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/v1/x")
        assert (response.status, await response.json()) == (status, body)


def test_the_cli_prints_the_message_and_exits_by_the_row() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        assert report(ConfigError("rfq.toml: store.url: bad")) == 1
        assert report(InvalidState("the RFQ is filled"), refused=True) == 1
        assert report(StoreError("the audit store is not open"), refused=True) == 1
    assert err.getvalue().splitlines() == [
        "rfq: rfq.toml: store.url: bad", "rfq: refused: the RFQ is filled",
        "rfq: the audit store is not open"]
    with pytest.raises(IllegalTransition):  # a bug keeps its traceback
        report(IllegalTransition("R1", "open", "open"))
