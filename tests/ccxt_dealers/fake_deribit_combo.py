"""The fake Deribit with options and Block RFQ (``fake_deribit_block.FakeDeribitBlock``) and its
combo books, written from Deribit's public documentation, driven by a real ccxt ``deribit``
(its signed ``request``).

What the documentation says and this fake does
(https://docs.deribit.com/api-reference/combo-books/public-get_combos, ``private-create_combo``,
``public-get_combo_details``; https://insights.deribit.com/exchange-updates/deribit-introducing-combos/):
- a combo is ``{"id", "instrument_id", "state": "active"|"inactive", "state_timestamp",
  "creation_timestamp", "legs": [{"instrument_name", "amount"}]}``, a leg's ``amount`` the
  "size multiplier of a leg. A negative value indicates that the trades on given leg are in
  opposite direction to the combo trades they originate from";
- ``public/get_combos`` (``currency``): the active combos; ``public/get_combo_details``
  (``combo_id``);
- ``private/create_combo`` (``trades``: ``instrument_name``, ``amount``, ``direction``)
  "verifies and creates a combo book or returns an existing combo matching the given trades"
  (the documentation's example: a call bought and a put sold, amount 1 each, make legs ``+1``
  and ``-1``);
- a combo is traded "using the API request private/buy specifying the combo instrument name";
  its book is ``public/get_order_book`` of that name; "one would not see open orders for the
  combo legs but only for the combo", and its trades are the legs' trades, each carrying
  ``combo_id`` and ``combo_trade_id``;
- ``private/get_user_trades_by_order`` (``order_id``): the order's trades.

Where the documentation is silent the fake chooses, and says so: a new combo's id is
``BTC-CMB-<n>`` (Deribit names known structures, e.g. ``BTC-CS-31MAR23-100000_200000``); how a
combo's price is split into leg prices (Deribit: "based on an aggregated price of the strategy
and the mark prices of the individual legs", ``private/get_leg_prices``): every leg but the last
at ``leg_marks`` (set by the test), the last leg the remainder, so the legs' prices times their
multipliers add up to the combo's price; the legs' fees are Deribit's options schedule on each
leg's own trade (``FakeDeribitBlock._leg_fee``: 0.0003 of the underlying, in BTC or, for a USDC
option, at the index; at most 12.5% of the leg's price), in the leg's settlement currency. A
combo order does not match the legs' own books (Deribit documents no implied matching).

What a test reads: ``combos`` (by id), ``combo_requests`` (every create_combo's trades),
``order_requests`` (``FakeDeribit``'s: every order, combo orders included), ``trades_by_order``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.ccxt_dealers.fake_deribit import RpcError, _num, now_ms
from tests.ccxt_dealers.fake_deribit_block import FakeDeribitBlock

__all__ = ["FakeDeribitCombos"]


@dataclass
class FakeDeribitCombos(FakeDeribitBlock):
    combos: dict[str, dict[str, Any]] = field(default_factory=dict)
    combo_requests: list[list[dict[str, Any]]] = field(default_factory=list)
    leg_marks: dict[str, Decimal] = field(default_factory=dict)
    trades_by_order: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _combo_ids: Any = field(default_factory=lambda: itertools.count(1))

    def list_combo(self, legs: dict[str, int], combo_id: str | None = None) -> str:
        """A combo listed on the venue (as if created earlier by anyone): its id."""
        combo_id = combo_id or f"BTC-CMB-{next(self._combo_ids)}"
        self.combos[combo_id] = {"id": combo_id, "instrument_id": 9000 + len(self.combos), "state": "active",
                                 "state_timestamp": now_ms(), "creation_timestamp": now_ms(),
                                 "legs": [{"instrument_name": n, "amount": a} for n, a in legs.items()]}
        return combo_id

    def instrument(self, name: str) -> dict[str, Any]:
        combo = self.combos.get(name)
        if combo is None:
            return super().instrument(name)
        first = super().instrument(combo["legs"][0]["instrument_name"])
        return {"instrument_name": name, "kind": "option_combo", "base_currency": first["base_currency"],
                "settlement_currency": first["settlement_currency"],
                "quote_currency": first["quote_currency"]}

    # --- combo methods -------------------------------------------------------------------------

    async def m_public_get_combos(self, p: dict[str, str]) -> Any:
        return [c for c in self.combos.values() if c["state"] == "active"
                and self.instrument(c["id"])["settlement_currency"] == p.get("currency", "BTC")]

    async def m_public_get_combo_details(self, p: dict[str, str]) -> Any:
        combo = self.combos.get(p.get("combo_id", ""))
        if combo is None:
            raise RpcError(10020, "invalid_or_unsupported_instrument", {"param": "combo_id"})
        return combo

    async def m_private_create_combo(self, p: dict[str, str]) -> Any:
        try:
            trades = json.loads(p.get("trades", ""))
        except ValueError:
            raise RpcError(-32602, "Invalid params", {"param": "trades", "reason": "not JSON"}) from None
        self.combo_requests.append(trades)
        legs = {}
        for trade in trades:
            self.instrument(trade["instrument_name"])
            amount = int(Decimal(str(trade["amount"])))
            legs[trade["instrument_name"]] = amount if trade["direction"] == "buy" else -amount
        for combo in self.combos.values():
            if {x["instrument_name"]: x["amount"] for x in combo["legs"]} == legs:
                return combo
        return self.combos[self.list_combo(legs)]

    async def m_private_get_user_trades_by_order(self, p: dict[str, str]) -> Any:
        self._lookup_gate()
        return self.trades_by_order.get(p.get("order_id", ""), [])

    # --- the matcher ---------------------------------------------------------------------------

    def _leg_prices(self, combo: dict[str, Any], price: Decimal) -> list[tuple[str, int, Decimal]]:
        legs = [(x["instrument_name"], int(x["amount"])) for x in combo["legs"]]
        out = [(name, m, self.leg_marks.get(name, Decimal(0))) for name, m in legs[:-1]]
        last, m_last = legs[-1]
        rest = price - sum((m * px for _, m, px in out), Decimal(0))
        return [*out, (last, m_last, rest / m_last)]

    def _match(self, direction: str, params: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        combo = self.combos.get(params["instrument_name"])
        if combo is None:
            return super()._match(direction, params)
        name = combo["id"]
        amount, limit = Decimal(params["amount"]), Decimal(params["price"])
        book_side = "asks" if direction == "buy" else "bids"
        levels = self.books.setdefault(name, {"bids": [], "asks": []})[book_side]
        order_id = f"BTC-{next(self._ids)}"
        filled, cost, fees, trades = Decimal(0), Decimal(0), Decimal(0), []
        for level in levels:
            px, avail = level
            if (px > limit if direction == "buy" else px < limit) or filled >= amount:
                break
            take = min(avail, amount - filled)
            filled, cost, level[1] = filled + take, cost + take * px, avail - take
            combo_trade_id = f"CT-{next(self._ids)}"
            for leg, m, leg_px in self._leg_prices(combo, px):
                size = take * abs(m)
                instrument = self.instrument(leg)
                fee = self._leg_fee(instrument, size, leg_px).quantize(Decimal("1e-10"))
                fees += fee
                leg_dir = direction if m > 0 else ("sell" if direction == "buy" else "buy")
                trades.append({"trade_id": f"T-{next(self._ids)}", "trade_seq": next(self._ids),
                               "timestamp": now_ms(), "order_id": order_id, "order_type": "limit",
                               "instrument_name": leg, "direction": leg_dir, "amount": _num(str(size)),
                               "price": _num(str(leg_px)), "fee": _num(str(fee)),
                               "fee_currency": instrument["settlement_currency"],
                               "index_price": _num(str(self.index_price)), "label": params.get("label", ""),
                               "combo_id": name, "combo_trade_id": combo_trade_id, "liquidity": "T",
                               "state": "filled", "tick_direction": 0})
        self.books[name][book_side] = [lv for lv in levels if lv[1] > 0]
        state = "filled" if filled == amount else "cancelled"
        order = {"order_id": order_id, "order_state": state, "order_type": "limit",
                 "time_in_force": params.get("time_in_force", "good_til_cancelled"), "instrument_name": name,
                 "direction": direction, "price": _num(str(limit)), "amount": _num(str(amount)),
                 "filled_amount": _num(str(filled)),
                 "average_price": _num(str(cost / filled)) if filled else 0,
                 "commission": _num(str(fees)), "label": params.get("label", ""), "api": True,
                 "creation_timestamp": now_ms(), "last_update_timestamp": now_ms()}
        self.orders[order_id] = order
        self.trades_by_order[order_id] = trades
        return order, trades
