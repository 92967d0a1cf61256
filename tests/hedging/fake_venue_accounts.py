"""The account endpoints of Deribit and OKX, for the venue margin reader
(``dealer_adapters.ccxt.margin``), on top of the venues' fakes in ``tests/ccxt_dealers`` (their
instruments, authentication and envelopes; those files are not changed here). Real ccxt talks
to them with ``exchange.urls['api']`` pointed here. Each records the account requests it
answered (``account_requests``), which the tests compare with what the report shows.

Written from the venues' public API documentation:

- **Deribit** ``private/get_account_summary`` (``currency``, required; ``extended``): the
  account in that currency, JSON numbers: ``currency``, ``balance``, ``equity``,
  ``margin_balance``, ``initial_margin``, ``maintenance_margin``, ``available_funds``,
  ``session_upl``, ``total_pl``... (https://docs.deribit.com/api-reference/account-management/private-get_account_summary);
  ``private/get_positions`` (``currency``, ``kind``): a list of positions: ``instrument_name``,
  ``kind``, ``direction`` (``buy``, ``sell``, ``zero``), ``size`` (USD for inverse futures,
  negative when short), ``size_currency``, ``average_price``, ``mark_price``, ``index_price``,
  ``estimated_liquidation_price`` (futures, segregated margin), ``initial_margin``,
  ``maintenance_margin``, ``floating_profit_loss``, ``realized_profit_loss``,
  ``total_profit_loss``, ``leverage``, ``delta``, ``open_orders_margin``
  (https://docs.deribit.com/api-reference/account-management/private-get_positions).
- **OKX** ``GET /api/v5/account/balance`` (``ccy``, optional): ``data[0]`` with ``totalEq``,
  ``imr``, ``mmr``, ``mgnRatio``, ``uTime`` and ``details``, one per currency: ``ccy``, ``eq``,
  ``cashBal``, ``availEq``, ``availBal``, ``frozenBal``, ``imr``, ``mmr``, ``mgnRatio``, ``upl``,
  all strings; ``GET /api/v5/account/positions`` (``instType``, ``instId``): ``instType``,
  ``instId``, ``mgnMode`` (``cross``, ``isolated``), ``posSide`` (``net``), ``pos`` (contracts,
  signed in net mode), ``posCcy``, ``ccy`` (margin currency), ``avgPx``, ``markPx``, ``liqPx``,
  ``imr`` (cross), ``margin`` (isolated), ``mmr``, ``mgnRatio``, ``lever``, ``upl``,
  ``notionalUsd``, ``cTime``, ``uTime`` (https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-balance,
  #trading-account-rest-api-get-positions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.ccxt_dealers.fake_deribit import FakeDeribit, RpcError, now_ms
from tests.ccxt_dealers.fake_okx import FakeOkx

__all__ = ["DeribitAccounts", "OkxAccounts"]


@dataclass
class DeribitAccounts(FakeDeribit):
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By currency: the fields of ``get_account_summary`` a test sets (the rest default to 0)."""
    positions: list[dict[str, Any]] = field(default_factory=list)
    account_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def m_private_get_account_summary(self, p: dict[str, str]) -> Any:
        self.account_requests.append(("private/get_account_summary", dict(p)))
        currency = p.get("currency")
        if not currency:
            raise RpcError(-32602, "Invalid params", {"param": "currency", "reason": "must be present"})
        summary = {"currency": currency, "balance": 0, "equity": 0, "margin_balance": 0, "initial_margin": 0,
                   "maintenance_margin": 0, "available_funds": 0, "session_upl": 0, "total_pl": 0,
                   "projected_initial_margin": 0, "projected_maintenance_margin": 0, "delta_total": 0,
                   "portfolio_margining_enabled": False, "margin_model": "segregated_sm"}
        summary.update(self.summaries.get(currency, {}))
        return summary

    async def m_private_get_positions(self, p: dict[str, str]) -> Any:
        self.account_requests.append(("private/get_positions", dict(p)))
        currency, kind = p.get("currency"), p.get("kind")
        return [row for row in self.positions
                if (currency in (None, "any") or row["instrument_name"].startswith(f"{currency}-"))
                and (kind is None or row.get("kind") == kind)]


@dataclass
class OkxAccounts(FakeOkx):
    details: list[dict[str, str]] = field(default_factory=list)
    """``details`` of the balance, one per currency (strings, as OKX sends them)."""
    positions: list[dict[str, str]] = field(default_factory=list)
    account_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def h_account_balance(self, q: dict[str, str], _b: Any) -> web.Response:
        self.account_requests.append(("account/balance", dict(q)))
        wanted = {c.strip() for c in q["ccy"].split(",")} if q.get("ccy") else None
        details = [d for d in self.details if wanted is None or d["ccy"] in wanted]
        return self.ok([{"adjEq": "", "imr": "", "mmr": "", "mgnRatio": "", "notionalUsd": "", "ordFroz": "",
                         "totalEq": "", "isoEq": "0", "uTime": str(now_ms()), "details": details}])

    async def h_account_positions(self, q: dict[str, str], _b: Any) -> web.Response:
        self.account_requests.append(("account/positions", dict(q)))
        ids = set(q["instId"].split(",")) if q.get("instId") else None
        return self.ok([row for row in self.positions
                        if (ids is None or row["instId"] in ids)
                        and (not q.get("instType") or row["instType"] == q["instType"])])
