"""The per-venue idempotency keys (``dialects.py``): pure, no venue, no ccxt.

Key derivation must satisfy each venue's documented rule, be the same across restarts
(the journal records it), and differ between executions. The look-ups must call the venue's
own method with the venue's own field. A book dealer on a venue without a dialect is a
config error.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dealer_adapters.ccxt import CcxtDealerConfig
from dealer_adapters.ccxt.adapter import lookup_policy_for
from dealer_adapters.ccxt.dialects import DEFAULT_KEY_LEN, DIALECTS, derive_key, dialect_for
from dealer_adapters.ccxt.route import MIN_KEY_DIGEST
from rfq_engine.domain.venue import VenueMarket

EXECUTION_IDS = [str(uuid.UUID(int=0)), str(uuid.uuid4()), "x", "é-ü/ß" * 40, "0" * 200]

# the venues' rules as documented (sources in dialects.py and docs/dealers-ccxt.md)
RULES: dict[str, tuple[str, int, str]] = {
    "okx": ("clOrdId", 32, r"[A-Za-z0-9]{1,32}"),
    "deribit": ("label", 64, r".{1,64}"),
    "bybit": ("orderLinkId", 36, r"[A-Za-z0-9_-]{1,36}"),
    "binance": ("newClientOrderId", 36, r"[\.A-Z\:/a-z0-9_-]{1,36}"),
}


@pytest.mark.parametrize("exchange", sorted(RULES))
def test_each_venue_has_its_documented_field_and_limits(exchange: str) -> None:
    dialect = dialect_for(exchange)
    assert dialect is not None
    field, max_len, rule = RULES[exchange]
    assert (dialect.field, dialect.max_len) == (field, max_len)
    assert dialect.allowed.pattern == rule and dialect.source.startswith("https://")


@pytest.mark.parametrize("exchange", sorted(RULES))
@pytest.mark.parametrize("length", [None, 24, 32, 36, 64])
@pytest.mark.parametrize("prefix", ["rfq", "A", "desk42", "desk4200"])
def test_derived_keys_fit_the_venue_and_are_deterministic(exchange: str, length: int | None,
                                                          prefix: str) -> None:
    dialect = dialect_for(exchange)
    assert dialect is not None
    _field, max_len, rule = RULES[exchange]
    keys = [derive_key(dialect, eid, prefix, length) for eid in EXECUTION_IDS]
    for eid, key in zip(EXECUTION_IDS, keys, strict=True):
        assert re.fullmatch(rule, key), (exchange, key)
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key)  # valid on every venue, not just this one
        assert len(key) == min(length if length is not None else DEFAULT_KEY_LEN, max_len)
        assert key.startswith(prefix)
        assert derive_key(dialect, eid, prefix, length) == key  # the same after a restart
    assert len(set(keys)) == len(keys)
    assert len(key) - len(prefix) >= MIN_KEY_DIGEST


@pytest.mark.parametrize(("prefix", "length"), [("desk42", 8), ("rfq", 18), ("desk4200", 23), ("A", 16)])
def test_a_key_too_short_to_tell_executions_apart_is_refused(prefix: str, length: int) -> None:
    # 2 hex digits (a 6-letter prefix in 8 characters) collided among five executions in CI:
    # a venue's look-up by key could then find another execution's order
    dialect = dialect_for("deribit")
    assert dialect is not None
    with pytest.raises(ValueError, match=f"at least {MIN_KEY_DIGEST} are needed"):
        derive_key(dialect, "4f0c1a8e-0d3c-4bfe-9b34-2a7c6a5d9e11", prefix, length)
    with pytest.raises(ValidationError, match=f"a length of at least {len(prefix) + MIN_KEY_DIGEST}"):
        cfg(exchange="deribit", client_order_prefix=prefix, client_order_id_max_len=length)
    assert cfg(exchange="deribit", client_order_prefix=prefix,
               client_order_id_max_len=len(prefix) + MIN_KEY_DIGEST).order_id_max_len == len(prefix) + 16


def test_the_default_key_is_32_characters_on_every_venue_and_the_same_as_before() -> None:
    from dealer_adapters.ccxt import client_id

    eid = "4f0c1a8e-0d3c-4bfe-9b34-2a7c6a5d9e11"
    okx = dialect_for("okx")
    assert okx is not None
    assert derive_key(okx, eid, "rfq") == client_id(eid, "rfq", 32)  # OKX journals stay valid
    keys = set()
    for dialect in DIALECTS.values():
        key = derive_key(dialect, eid, "rfq")
        assert len(key) == 32
        keys.add(key)
    assert len(keys) == 1  # one key per execution, whatever the venue


def test_binance_futures_ids_share_the_binance_dialect() -> None:
    assert dialect_for("binanceusdm") is dialect_for("binance") is dialect_for("binancecoinm")
    assert dialect_for("kraken") is None and dialect_for("bitget") is None


# --- config ------------------------------------------------------------------------------------


def cfg(**data: Any) -> CcxtDealerConfig:
    return CcxtDealerConfig.model_validate({"journal_path": "j.jsonl", **data})


def test_a_book_dealer_on_a_venue_without_a_dialect_is_refused() -> None:
    with pytest.raises(ValidationError, match="has no idempotency-key dialect"):
        cfg(exchange="kraken")
    with pytest.raises(ValidationError, match="could not look a timed-out order up by our key"):
        cfg(exchange="bitget", mode="book")
    assert cfg(exchange="kraken", mode="convert").exchange == "kraken"  # convert: no order field


def test_the_key_length_is_capped_by_the_venue() -> None:
    assert cfg(exchange="deribit").order_id_max_len == 32
    assert cfg(exchange="deribit", client_order_id_max_len=64).order_id_max_len == 64
    assert cfg(exchange="bybit", client_order_id_max_len=36).order_id_max_len == 36
    with pytest.raises(ValidationError, match="client_order_id_max_len: Bybit orderLinkId takes at most 36"):
        cfg(exchange="bybit", client_order_id_max_len=40)
    with pytest.raises(ValidationError, match="OKX clOrdId takes at most 32"):
        cfg(exchange="okx", client_order_id_max_len=33)


def test_the_lookup_policy_is_per_dealer() -> None:
    book = lookup_policy_for(cfg(exchange="deribit"))
    assert (book.key, book.can_query, book.not_found_proves_absent) == ("Deribit label", True, True)
    assert "get_order_state_by_label" in book.note
    assert lookup_policy_for(cfg(exchange="okx")).key == "OKX clOrdId"
    assert lookup_policy_for(cfg(exchange="binanceusdm")).key == "Binance newClientOrderId"
    okx_convert = lookup_policy_for(cfg(exchange="okx", mode="convert"))
    assert okx_convert.can_query and "clTReqId" in okx_convert.key
    other_convert = lookup_policy_for(cfg(exchange="kraken", mode="convert"))
    assert not other_convert.can_query and other_convert.not_found_proves_absent
    block = lookup_policy_for(cfg(exchange="okx", mode="okx_rfq", rfq_counterparties=["MM"]))
    assert block.can_query and "rfqId" in block.key


# --- the look-up calls, against a stub exchange -----------------------------------------------


class OrderNotFound(Exception):  # what ccxt raises; matched by class name, as in common.classify
    pass


class StubExchange:
    """Records each call; answers from a queue per method (an exception is raised)."""

    def __init__(self, **answers: list[Any]) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers = answers

    def _answer(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        answer = self.answers[name].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def fetch_order(self, *args: Any) -> Any:
        return self._answer("fetch_order", *args)

    async def privateGetV5OrderRealtime(self, *args: Any) -> Any:  # ccxt's implicit method names
        return self._answer("realtime", *args)

    async def privateGetV5OrderHistory(self, *args: Any) -> Any:
        return self._answer("history", *args)

    async def privateGetGetOrderStateByLabel(self, *args: Any) -> Any:
        return self._answer("by_label", *args)

    def market(self, symbol: str) -> dict[str, Any]:
        return {"symbol": symbol}

    def parse_order(self, raw: dict[str, Any], market: Any = None) -> dict[str, Any]:
        return {"parsed": raw, "market": market}


def market(**fields: Any) -> VenueMarket:
    data = {"symbol": "BTC/USDT:USDT", "id": "BTCUSDT", "type": "swap", "base": "BTC", "quote": "USDT",
            "settle": "USDT", "linear": True, "inverse": False, "contractSize": 1, **fields}
    parsed = VenueMarket.from_ccxt(data, 4)
    assert parsed is not None
    return parsed


async def test_okx_and_binance_look_up_by_their_own_field() -> None:
    for exchange_id, param in (("okx", "clOrdId"), ("binance", "origClientOrderId")):
        dialect = dialect_for(exchange_id)
        assert dialect is not None
        stub = StubExchange(fetch_order=[{"id": "1"}, OrderNotFound("gone")])
        context = dialect.context(market())
        assert await dialect.find(stub, "rfqK", context) == [{"id": "1"}]
        assert await dialect.find(stub, "rfqK", context) == []  # the venue's "no such order"
        assert stub.calls[0] == ("fetch_order", (None, "BTC/USDT:USDT", {param: "rfqK"}))
        failing = StubExchange(fetch_order=[TimeoutError("slow")])
        with pytest.raises(TimeoutError):  # a failed call is not "none": the caller says unknown
            await dialect.find(failing, "rfqK", context)


async def test_bybit_looks_in_open_orders_then_in_history() -> None:
    dialect = dialect_for("bybit")
    assert dialect is not None
    context = dialect.context(market())
    assert context == {"symbol": "BTC/USDT:USDT", "market_id": "BTCUSDT", "category": "linear"}
    spot = market(type="spot", settle=None, linear=None, contractSize=None)
    assert dialect.context(spot)["category"] == "spot"
    assert dialect.context(market(settle="BTC", linear=False, inverse=True))["category"] == "inverse"
    row = {"orderLinkId": "rfqK", "orderId": "9"}
    stub = StubExchange(realtime=[{"result": {"list": []}}], history=[{"result": {"list": [row]}}])
    found = await dialect.find(stub, "rfqK", context)
    assert found == [{"parsed": row, "market": {"symbol": "BTC/USDT:USDT"}}]
    request = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "rfqK"}
    assert stub.calls == [("realtime", (request,)), ("history", (request,))]


async def test_deribit_looks_up_by_label_in_each_currency() -> None:
    dialect = dialect_for("deribit")
    assert dialect is not None
    context = dialect.context(market(symbol="BTC/USDC:USDC", id="BTC_USDC-PERPETUAL", quote="USDC",
                                     settle="USDC"))
    assert context["currencies"] == ["USDC", "BTC"]
    other = {"label": "someone-else", "order_id": "1"}
    mine = {"label": "rfqK", "order_id": "2"}
    stub = StubExchange(by_label=[{"result": []}, {"result": [other, mine]}])
    assert await dialect.find(stub, "rfqK", context) == [{"parsed": mine, "market": None}]
    assert [c[1][0] for c in stub.calls] == [{"currency": "USDC", "label": "rfqK"},
                                              {"currency": "BTC", "label": "rfqK"}]


def test_the_docs_table_names_every_dialect() -> None:
    """docs/dealers-ccxt.md shows each venue's field and its source."""
    text = (Path(__file__).parents[2] / "docs" / "dealers-ccxt.md").read_text()
    assert "## Venue idempotency keys" in text
    for dialect in DIALECTS.values():
        assert f"`{dialect.field}`" in text and dialect.source in text
