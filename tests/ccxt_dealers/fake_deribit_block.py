"""The fake Deribit (``fake_deribit.FakeDeribit``) with options and the taker's side of the
Block RFQ, written from Deribit's public API v2 documentation (OpenAPI 2.1.1, the
``private/*block_rfq*`` and block-trade methods, and the "Deribit Block RFQ API
walkthrough"), served as JSON-RPC over HTTP as Deribit serves it and driven by a real
ccxt ``deribit`` (its ``request`` signs each call).

What the documentation says and this fake does:
- ``private/create_block_rfq`` (``legs``: ``instrument_name``, ``amount``, ``direction``;
  ``label`` at most 64 characters; ``makers``; ``disclosed``, which may be ``false`` only
  "when at least 5 makers are targeted"). The legs are "broken down into ratios and a total
  amount": ``amount`` is the largest amount dividing every leg's, each leg's integer
  ``ratio`` its amount over it ("this value multiplied by the ratio of a leg gives trade size
  on that leg"). Leg amounts are in the instrument's units ("for perpetual and inverse
  futures the amount is in USD units. For options and linear futures it is the underlying
  base currency coin"). A Block RFQ expires 5 minutes after creation. The answer is the
  Block RFQ, ``state`` ``created``, empty ``bids`` and ``asks``.
- "After Block RFQ creation, a grace period of 5 seconds begins, during which the taker
  cannot see quotes or trade the Block RFQ" (``grace_s``, shortened by the tests).
- ``private/get_block_rfqs`` (``block_rfq_id``, ``state``, ``role``, ``currency``,
  ``count``): ``{"block_rfqs": [..], "continuation": null}``; the taker sees the best maker
  quotes as ``bids`` and ``asks``, one entry per price (``price``, ``amount``, ``makers``,
  ``execution_instruction``, ``expires_at``: "equal to the earliest expiry of placed
  quotes", ``last_update_timestamp``), its ``label`` and ``makers``; ``trades`` (``direction``,
  ``price``, ``amount``, ``maker``) "only visible for the filled Block RFQ".
- A quote's price is the structure's: the legs' prices times their ratios, added for a
  leg bought and subtracted for a leg sold, in the legs' price currency (BTC for inverse
  options, USDC for linear ones), per unit of the Block RFQ's ``amount``
  (``public/get_block_rfq_trades``: legs bought at 0.1 and sold at 0.05 trade at 0.05).
  A bid is a maker buying the structure as listed; a taker who buys trades the legs in
  their listed directions, one who sells in the opposite ones.
- ``private/accept_block_rfq`` (``block_rfq_id``, ``price`` "maximum acceptable price for
  execution", ``amount``, ``direction`` "from the taker perspective", ``legs`` with
  ``ratio``, ``time_in_force`` ``fill_or_kill`` | ``good_til_cancelled``; no label or client
  id: the method takes none). "The taker can only trade for the amount requested";
  ``fill_or_kill`` fills the whole amount from the makers' quotes that cross ``price``
  (best price first, ``all_or_none`` before ``any_part_of`` at one price, each maker at its
  own price) or nothing. The answer is ``{"block_trades": [{"id", "timestamp",
  "trades": [..]}], "trade_trigger": null}``, one block trade per maker, each trade a leg
  (``instrument_name``, ``direction``, ``amount``, ``price``, ``fee``, ``fee_currency``,
  ``block_trade_id``, ``block_rfq_id``, ``block_rfq_quote_id``...). The Block RFQ is then
  ``filled``.
- ``private/cancel_block_rfq`` (``block_rfq_id``): the Block RFQ, ``state`` ``cancelled``.
- ``private/get_block_trades`` (``block_rfq_id``, ``currency``, ``count``) and
  ``private/get_block_trade`` (``id``): the block trades.

Where the documentation is silent the fake chooses, and says so: a call on a Block RFQ
that is not open, an accept during the grace period, an unfilled ``fill_or_kill`` and an
accept whose legs or amount are not the Block RFQ's answer ``11030 other_reject`` with a
reason ("some rejects which are not considered as very often, more info may be specified
in <Reason>", Deribit's error list); a cancel of a filled one ``11008 already_filled``.
Arrays and objects in a GET query are JSON text (the OpenAPI spec types ``hedge`` as "JSON
string"; the same for ``legs`` and ``makers``). Option fees: Deribit's published schedule,
0.03% of the underlying capped at 12.5% of the premium, in the settlement currency.

Options listed, besides ``FakeDeribit``'s: inverse ``BTC-<expiry>-<strike>-<P|C>`` (premium in
BTC, settled in BTC, ``contract_size`` 1, ``min_trade_amount`` 0.1) and linear
``BTC_USDC-<expiry>-<strike>-<P|C>`` (premium in USDC, ``contract_size`` 0.01,
``min_trade_amount`` 0.01), for ``option_strikes`` expiring ``option_expiry`` at 08:00 UTC;
``index_price`` (``FakeDeribit``'s) is the ``btc_usd`` and ``btc_usdc`` index.

What a test scripts and reads:
- ``maker_quotes``: the quotes every new Block RFQ receives (``MakerQuote``: maker, side,
  leg prices by instrument, amount, instruction, lifetime); ``withdraw(maker)``;
- ``accept_mode``: ``normal``; ``slow`` (filled at once, answered ``slow_s`` later: past
  ccxt's timeout); ``lost`` (received, nothing done, answered late with ``10040 retry``);
  ``rate_limit`` (``10028 too_many_requests``, nothing done); ``insufficient`` (``10009
  not_enough_funds``, Deribit's error list: refused, nothing done); ``view_patch``: fields
  replaced in every ``get_block_rfqs`` answer;
- ``fail_lookups_for(seconds)`` (``FakeDeribit``'s) also answers the Block RFQ look-ups
  (``get_block_rfqs``, ``get_block_trades``, ``get_block_trade``) with ``10040 retry``: the
  venue cannot be asked, its Block RFQs and their trades are unaffected;
- ``block_requests`` (every ``(method, params)`` of the block RFQ calls), ``block_rfqs``
  (by id), ``accepts`` (every accept's params), ``executed`` (accepts that traded: the
  count the tests compare with the store's fills), ``problems``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from tests.ccxt_dealers.fake_deribit import FakeDeribit, RpcError, _num, expiry_ms, expiry_name, now_ms

__all__ = ["FakeDeribitBlock", "MakerQuote", "inverse_option", "linear_option"]

_LIFETIME_MS = 5 * 60 * 1000
_FEE_OF_UNDERLYING = Decimal("0.0003")
_FEE_CAP_OF_PREMIUM = Decimal("0.125")


def inverse_option(expiry: date, strike: int, kind: str) -> str:
    return f"BTC-{expiry_name(expiry)}-{strike}-{kind}"


def linear_option(expiry: date, strike: int, kind: str) -> str:
    return f"BTC_USDC-{expiry_name(expiry)}-{strike}-{kind}"


@dataclass
class MakerQuote:
    """A maker's quote on every new Block RFQ: ``side`` ``bid`` (the maker buys the structure as
    listed) or ``ask``; ``legs`` the price of each leg by instrument name; ``amount`` None for
    the Block RFQ's whole amount."""

    maker: str
    side: str
    legs: dict[str, str]
    amount: str | None = None
    instruction: str = "any_part_of"
    lifetime_s: float = 30.0


def _json_param(params: dict[str, str], name: str, required: bool = False) -> Any:
    text = params.get(name)
    if text is None:
        if required:
            raise RpcError(-32602, "Invalid params", {"param": name, "reason": "must be present"})
        return None
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        raise RpcError(-32602, "Invalid params", {"param": name, "reason": "not JSON"}) from None


def _reject(reason: str) -> RpcError:
    return RpcError(11030, "other_reject", {"reason": reason})


def _ratios(amounts: list[Decimal]) -> tuple[Decimal, list[int]]:
    """The total amount (the largest amount dividing every leg's) and each leg's integer ratio."""
    places = max(-a.as_tuple().exponent for a in amounts)  # type: ignore[operator]
    scale = Decimal(10) ** max(places, 0)
    ints = [int(a * scale) for a in amounts]
    common = math.gcd(*ints)
    return Decimal(common) / scale, [i // common for i in ints]


@dataclass
class FakeDeribitBlock(FakeDeribit):
    option_strikes: tuple[int, ...] = (50000, 70000)
    grace_s: float = 5.0
    maker_quotes: list[MakerQuote] = field(default_factory=list)
    accept_mode: str = "normal"  # normal | slow | lost | rate_limit | insufficient
    view_patch: dict[str, Any] = field(default_factory=dict)
    """Fields replaced in every ``get_block_rfqs`` view (a venue answering garbage, for the tests)."""
    block_rfqs: dict[int, dict[str, Any]] = field(default_factory=dict)
    block_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    accepts: list[dict[str, str]] = field(default_factory=list)
    block_trades: list[dict[str, Any]] = field(default_factory=list)
    _quotes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _created_at: dict[int, float] = field(default_factory=dict)

    @property
    def executed(self) -> int:  # type: ignore[override]
        """Orders that traded plus Block RFQs that traded."""
        return super().executed + sum(1 for r in self.block_rfqs.values() if r["state"] == "filled")

    def withdraw(self, maker: str) -> None:
        """The maker cancels its quotes on every Block RFQ."""
        for quotes in self._quotes.values():
            quotes[:] = [q for q in quotes if q["maker"] != maker]

    # --- instruments -------------------------------------------------------------------------

    def instruments(self) -> list[dict[str, Any]]:
        listed = super().instruments()
        if self.option_expiry is None:
            return listed
        names = {i["instrument_name"] for i in listed}
        expires = expiry_ms(self.option_expiry)
        for strike in self.option_strikes:
            for kind, option_type in (("P", "put"), ("C", "call")):
                common = {"kind": "option", "option_type": option_type, "strike": strike,
                          "base_currency": "BTC", "settlement_period": "month", "is_active": True,
                          "rfq": False, "creation_timestamp": 1_700_000_000_000,
                          "expiration_timestamp": expires, "taker_commission": 0.0003,
                          "maker_commission": 0.0003, "block_trade_commission": 0.0003,
                          "block_trade_min_trade_amount": 25}
                inverse = inverse_option(self.option_expiry, strike, kind)
                if inverse not in names:
                    listed.append({**common, "instrument_name": inverse,
                                   "instrument_id": 100 + strike // 1000 + (0 if kind == "P" else 1),
                                   "instrument_type": "reversed", "quote_currency": "BTC",
                                   "counter_currency": "USD", "settlement_currency": "BTC",
                                   "price_index": "btc_usd", "contract_size": 1, "min_trade_amount": 0.1,
                                   "tick_size": 0.0001, "block_trade_tick_size": 0.0001})
                listed.append({**common, "instrument_name": linear_option(self.option_expiry, strike, kind),
                               "instrument_id": 200 + strike // 1000 + (0 if kind == "P" else 1),
                               "instrument_type": "linear", "quote_currency": "USDC",
                               "counter_currency": "USDC", "settlement_currency": "USDC",
                               "price_index": "btc_usdc", "contract_size": 0.01, "min_trade_amount": 0.01,
                               "tick_size": 5, "block_trade_tick_size": 0.01})
        return listed

    # --- block RFQ, taker side -----------------------------------------------------------------

    def _view(self, block_rfq_id: int) -> dict[str, Any]:
        """The Block RFQ as its taker sees it."""
        rfq = self.block_rfqs[block_rfq_id]
        if rfq["state"] in ("created", "open") and now_ms() > rfq["expiration_timestamp"]:
            rfq["state"] = "expired"
        view = {k: v for k, v in rfq.items() if k not in ("trades", "mark_price", "index_prices")}
        in_grace = time.monotonic() < self._created_at[block_rfq_id] + self.grace_s
        if rfq["state"] == "created" and not in_grace:
            rfq["state"] = view["state"] = "open"
        view["bids"], view["asks"] = [], []
        if rfq["state"] == "open" and not in_grace:
            for side in ("bids", "asks"):
                view[side] = self._levels(block_rfq_id, side, disclosed=bool(rfq["disclosed"]))
        if rfq["state"] == "filled":
            view.update(trades=rfq["trades"], mark_price=rfq["mark_price"], index_prices=rfq["index_prices"])
        return {**view, **self.view_patch}

    def _live_quotes(self, block_rfq_id: int, side: str) -> list[dict[str, Any]]:
        now = now_ms()
        return [q for q in self._quotes.get(block_rfq_id, []) if q["side"] == side and q["expires_at"] > now]

    def _levels(self, block_rfq_id: int, side: str, *, disclosed: bool) -> list[dict[str, Any]]:
        by_price: dict[Decimal, list[dict[str, Any]]] = {}
        for quote in self._live_quotes(block_rfq_id, side[:-1]):
            by_price.setdefault(quote["price"], []).append(quote)
        levels = []
        for price in sorted(by_price, reverse=side == "bids"):
            quotes = by_price[price]
            instructions = {q["execution_instruction"] for q in quotes}
            levels.append({
                "price": _num(str(price)), "amount": _num(str(sum(q["amount"] for q in quotes))),
                "makers": [q["maker"] if disclosed else "ANONYMOUS" for q in quotes],
                "execution_instruction": "all_or_none" if instructions == {"all_or_none"} else "any_part_of",
                "expires_at": min(q["expires_at"] for q in quotes),
                "last_update_timestamp": max(q["last_update_timestamp"] for q in quotes),
            })
        return levels

    def _place_maker_quotes(self, rfq: dict[str, Any]) -> None:
        quotes = []
        for script in self.maker_quotes:
            prices = {name: Decimal(px) for name, px in script.legs.items()}
            if set(prices) != {leg["instrument_name"] for leg in rfq["legs"]}:
                self.problems.append(f"maker {script.maker} quote does not price every leg")
                continue
            price = sum(((1 if leg["direction"] == "buy" else -1) * leg["ratio"]
                         * prices[leg["instrument_name"]] for leg in rfq["legs"]), Decimal(0))
            quotes.append({
                "block_rfq_quote_id": next(self._ids), "maker": script.maker, "side": script.side,
                "price": price, "legs": prices,
                "amount": Decimal(str(rfq["amount"]) if script.amount is None else script.amount),
                "execution_instruction": script.instruction, "last_update_timestamp": now_ms(),
                "expires_at": now_ms() + int(script.lifetime_s * 1000),
            })
        self._quotes[rfq["block_rfq_id"]] = quotes

    async def m_private_create_block_rfq(self, p: dict[str, str]) -> Any:
        self.block_requests.append(("create", dict(p)))
        legs = _json_param(p, "legs", required=True)
        makers = _json_param(p, "makers") or []
        if not isinstance(legs, list) or not legs or not isinstance(makers, list):
            raise RpcError(-32602, "Invalid params", {"param": "legs", "reason": "a list of legs"})
        label = p.get("label", "")
        if len(label) > 64:
            raise RpcError(-32602, "Invalid params", {"param": "label", "reason": "maximum 64 characters"})
        disclosed = p.get("disclosed", "true") != "false"
        if not disclosed and len(makers) < 5 and makers:
            raise _reject("disclosed=false needs at least 5 makers")
        amounts = []
        for leg in legs:
            if not isinstance(leg, dict) or set(leg) != {"instrument_name", "amount", "direction"}:
                raise RpcError(-32602, "Invalid params", {"param": "legs", "reason": f"bad leg {leg!r}"})
            instrument = self.instrument(str(leg["instrument_name"]))
            amount = Decimal(str(leg["amount"]))
            step = Decimal(str(instrument["min_trade_amount"]))
            if amount <= 0 or amount % step != 0 or leg["direction"] not in ("buy", "sell"):
                raise RpcError(10021, "invalid_amount", {"param": "legs", "reason": f"{leg!r}"})
            amounts.append(amount)
        total, ratios = _ratios(amounts)
        created = now_ms()
        block_rfq_id = next(self._ids)
        rfq = {
            "block_rfq_id": block_rfq_id, "state": "created", "role": "taker", "amount": _num(str(total)),
            "min_trade_amount": _num(str(total)), "combo_id": None, "label": label, "makers": makers,
            "disclosed": disclosed, "creation_timestamp": created,
            "expiration_timestamp": created + _LIFETIME_MS, "bids": [], "asks": [],
            "legs": [{"instrument_name": leg["instrument_name"], "direction": leg["direction"], "ratio": r}
                     for leg, r in zip(legs, ratios, strict=True)],
        }
        self.block_rfqs[block_rfq_id] = rfq
        self._created_at[block_rfq_id] = time.monotonic()
        self._place_maker_quotes(rfq)
        return self._view(block_rfq_id)

    def _rfq(self, p: dict[str, str]) -> dict[str, Any]:
        try:
            block_rfq_id = int(p["block_rfq_id"])
        except (KeyError, ValueError):
            raise RpcError(-32602, "Invalid params",
                           {"param": "block_rfq_id", "reason": "an integer"}) from None
        if block_rfq_id not in self.block_rfqs:
            raise _reject(f"block_rfq {block_rfq_id} not found")
        return self.block_rfqs[block_rfq_id]

    async def m_private_get_block_rfqs(self, p: dict[str, str]) -> Any:
        self.block_requests.append(("get", dict(p)))
        self._lookup_gate()
        ids = [int(p["block_rfq_id"])] if "block_rfq_id" in p else sorted(self.block_rfqs, reverse=True)
        views = [self._view(i) for i in ids if i in self.block_rfqs]
        if p.get("state"):
            views = [v for v in views if v["state"] == p["state"]]
        return {"block_rfqs": views[: int(p.get("count", "20"))], "continuation": None}

    async def m_private_cancel_block_rfq(self, p: dict[str, str]) -> Any:
        self.block_requests.append(("cancel", dict(p)))
        rfq = self._rfq(p)
        view = self._view(rfq["block_rfq_id"])
        if view["state"] == "filled":
            raise RpcError(11008, "already_filled")
        if view["state"] not in ("created", "open"):
            raise _reject(f"block_rfq is {view['state']}")
        rfq["state"] = "cancelled"
        return self._view(rfq["block_rfq_id"])

    def _fill(self, rfq: dict[str, Any], direction: str,
              limit: Decimal) -> list[tuple[dict[str, Any], Decimal]]:
        """The quotes (and amounts) a fill-or-kill takes, or none when the whole amount cannot fill."""
        side = "ask" if direction == "buy" else "bid"
        quotes = [q for q in self._live_quotes(rfq["block_rfq_id"], side)
                  if (q["price"] <= limit if direction == "buy" else q["price"] >= limit)]
        quotes.sort(key=lambda q: (q["price"] if direction == "buy" else -q["price"],
                                   q["execution_instruction"] != "all_or_none", q["last_update_timestamp"]))
        left, taken = Decimal(str(rfq["amount"])), []
        for quote in quotes:
            if left <= 0:
                break
            if quote["execution_instruction"] == "all_or_none" and quote["amount"] > left:
                continue
            take = min(quote["amount"], left)
            taken.append((quote, take))
            left -= take
        return taken if left == 0 else []

    def _leg_fee(self, instrument: dict[str, Any], amount: Decimal, price: Decimal) -> Decimal:
        underlying = amount if instrument["settlement_currency"] == "BTC" else amount * self.index_price
        return min(_FEE_OF_UNDERLYING * underlying, _FEE_CAP_OF_PREMIUM * abs(price) * amount)

    def _trade(self, rfq: dict[str, Any], direction: str, taken: list[tuple[dict[str, Any], Decimal]]
               ) -> list[dict[str, Any]]:
        block_trades = []
        for quote, amount in taken:
            block_id = f"BLOCK-{next(self._ids)}"
            trades = []
            for leg in rfq["legs"]:
                instrument = self.instrument(leg["instrument_name"])
                flipped = "sell" if leg["direction"] == "buy" else "buy"
                leg_dir = leg["direction"] if direction == "buy" else flipped
                leg_amount = amount * leg["ratio"]
                price = quote["legs"][leg["instrument_name"]]
                trades.append({
                    "trade_id": str(next(self._ids)), "trade_seq": next(self._ids), "timestamp": now_ms(),
                    "instrument_name": leg["instrument_name"], "direction": leg_dir,
                    "amount": _num(str(leg_amount)), "contracts": _num(str(leg_amount / Decimal(
                        str(instrument["contract_size"])))), "price": _num(str(price)),
                    "index_price": _num(str(self.index_price)), "mark_price": _num(str(price)),
                    "fee": _num(str(self._leg_fee(instrument, leg_amount, price).quantize(Decimal("1e-8")))),
                    "fee_currency": instrument["settlement_currency"], "state": "filled",
                    "order_type": "limit", "order_id": str(next(self._ids)), "matching_id": None,
                    "tick_direction": 0, "liquidity": "T", "api": True, "block_trade_id": block_id,
                    "block_rfq_id": rfq["block_rfq_id"], "block_rfq_quote_id": quote["block_rfq_quote_id"],
                    "block_trade_leg_count": len(rfq["legs"]),
                })
            block_trades.append({"id": block_id, "timestamp": now_ms(), "trades": trades})
        rfq["state"] = "filled"
        rfq["trades"] = [{"direction": direction, "price": _num(str(q["price"])), "amount": _num(str(a)),
                          "maker": q["maker"]} for q, a in taken]
        rfq["mark_price"] = rfq["trades"][0]["price"]
        index = _num(str(self.index_price))
        rfq["index_prices"] = {"btc_usd": index, "btc_usdc": index}
        self.block_trades.extend(block_trades)
        return block_trades

    async def m_private_accept_block_rfq(self, p: dict[str, str]) -> Any:
        self.block_requests.append(("accept", dict(p)))
        self.accepts.append(dict(p))
        rfq = self._rfq(p)
        if self.accept_mode == "lost":
            await asyncio.sleep(self.slow_s)
            raise RpcError(10040, "retry")
        if self.accept_mode == "rate_limit":
            raise RpcError(10028, "too_many_requests")
        if self.accept_mode == "insufficient":
            raise RpcError(10009, "not_enough_funds")
        legs = _json_param(p, "legs", required=True)
        if time.monotonic() < self._created_at[rfq["block_rfq_id"]] + self.grace_s:
            raise _reject("the block_rfq is in its grace period")
        state = self._view(rfq["block_rfq_id"])["state"]
        if state != "open":
            raise _reject(f"block_rfq is {state}")
        if p.get("time_in_force") not in ("fill_or_kill", "good_til_cancelled") or p.get("direction") not in (
                "buy", "sell"):
            raise RpcError(-32602, "Invalid params", {"param": "time_in_force/direction"})
        if p["time_in_force"] != "fill_or_kill":
            self.problems.append("an accept that is not fill_or_kill")
            raise _reject("the fake takes fill_or_kill only")
        wanted = [{"instrument_name": x["instrument_name"], "direction": x["direction"], "ratio": x["ratio"]}
                  for x in rfq["legs"]]
        sent = [{"instrument_name": x.get("instrument_name"), "direction": x.get("direction"),
                 "ratio": int(x.get("ratio", 0))} for x in legs] if isinstance(legs, list) else None
        if sent != wanted:
            self.problems.append(f"accept legs {sent} are not the block_rfq's {wanted}")
            raise _reject("legs do not match the block_rfq")
        if Decimal(p.get("amount", "0")) != Decimal(str(rfq["amount"])):
            self.problems.append(f"accept amount {p.get('amount')} is not the block_rfq's {rfq['amount']}")
            raise _reject("the taker can only trade for the amount requested")
        taken = self._fill(rfq, p["direction"], Decimal(p["price"]))
        if not taken:
            raise _reject("fill_or_kill: the quotes do not cover the amount at this price")
        block_trades = self._trade(rfq, p["direction"], taken)
        if self.accept_mode == "slow":
            await asyncio.sleep(self.slow_s)
        return {"block_trades": block_trades, "trade_trigger": None}

    async def m_private_get_block_trades(self, p: dict[str, str]) -> Any:
        self.block_requests.append(("get_block_trades", dict(p)))
        self._lookup_gate()
        out = self.block_trades
        if "block_rfq_id" in p:
            out = [b for b in out if b["trades"][0]["block_rfq_id"] == int(p["block_rfq_id"])]
        return list(reversed(out))[: int(p.get("count", "20"))]

    async def m_private_get_block_trade(self, p: dict[str, str]) -> Any:
        self._lookup_gate()
        found = next((b for b in self.block_trades if b["id"] == p.get("id")), None)
        if found is None:
            raise _reject("block trade not found")
        return found
