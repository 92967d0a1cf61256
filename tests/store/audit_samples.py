"""Payload builders for audit events, shaped like the catalogue in rfq_engine/store/events.py."""

from __future__ import annotations

from typing import Any

from rfq_engine.store import AuditStore, EventType

TS = "2026-11-21T10:00:05.000000Z"


def spec(
    requester: str = "alice", client_rfq_id: str | None = "c-1", mandate: str = "hedge",
    quantity: str = "10", direction: str = "buy", unit: str = "BTC",
) -> dict[str, Any]:
    return {
        "legs": [{"instrument": {"kind": "spot", "underlying": "BTC", "quote": "USD"},
                  "side": "buy", "ratio": "1"}],
        "direction": direction, "quantity": quantity, "quantity_unit": unit,
        "dealers": ["d1", "d2", "d3"], "requester": requester, "mandate": mandate,
        "window_ms": 5000, "allow_partial": True, "client_rfq_id": client_rfq_id,
        "private_side": None, "limit_price": None, "settlement": "cash", "hedge": None,
        "tags": [],
    }


def submitted(notional: str = "1000000", **kw: Any) -> dict[str, Any]:
    return {"spec": spec(**kw), "notional": notional, "reference": None}


def state(frm: str, to: str, reason: str = "") -> dict[str, Any]:
    return {"from": frm, "to": to, "reason": reason}


def quote(
    dealer: str, quote_id: str, ask: str | None = "100.5", bid: str | None = None,
    quantity: str = "10", received_at: str = TS,
) -> dict[str, Any]:
    return {
        "dealer_id": dealer, "quote_id": quote_id, "bid": bid, "ask": ask,
        "quantity": quantity, "valid_until": "2026-11-21T10:00:10.000000Z",
        "received_at": received_at, "msg_id": f"m-{quote_id}",
    }


def ranked(
    ranking: list[tuple[str, str]], rejected: list[tuple[str, str, str]] | None = None
) -> dict[str, Any]:
    return {
        "side": "ask", "reference": None,
        "min_quotes": {"rule": "min_quotes", "passed": True, "reason": ""},
        "ranking": [
            {"rank": i + 1, "dealer_id": d, "quote_id": q, "price": "100", "quantity": "10",
             "received_at": TS, "verdicts": []}
            for i, (d, q) in enumerate(ranking)
        ],
        "rejected": [
            {"dealer_id": d, "quote_id": q, "price": None, "reason": r, "verdicts": []}
            for d, q, r in rejected or []
        ],
    }


def award(execution_id: str, dealer: str, quote_id: str, price: str = "100.5",
          quantity: str = "10") -> dict[str, Any]:
    return {
        "execution_id": execution_id, "dealer_id": dealer, "quote_id": quote_id, "side": "ask",
        "price": price, "quantity": quantity, "confirm_by": "2026-11-21T10:00:07.000000Z",
        "rank": 1, "reason": "best price", "cover_price": None,
    }


def confirmed(execution_id: str, dealer: str) -> dict[str, Any]:
    return {"execution_id": execution_id, "dealer_id": dealer, "price": "100.5",
            "quantity": "10", "dealer_trade_id": "T1", "msg_id": None, "source": "dealer"}


def exec_rejected(execution_id: str, dealer: str, reason: str) -> dict[str, Any]:
    return {"execution_id": execution_id, "dealer_id": dealer, "reason": reason,
            "msg_id": None, "timeout": False}


def fill(
    fill_id: str, execution_id: str, dealer: str, mandate: str = "hedge", quantity: str = "4",
    notional: str = "402", last_date: str | None = None, price: str = "100.5",
) -> dict[str, Any]:
    return {
        "fill_id": fill_id, "execution_id": execution_id, "dealer_id": dealer,
        "mandate": mandate, "price": price, "quantity": quantity, "notional": notional,
        "dealer_trade_id": f"T-{fill_id}", "last_date": last_date,
    }


async def lifecycle(store: AuditStore, rfq_id: str, *, requester: str = "alice",
                    client_rfq_id: str = "c-1") -> None:
    """A filled RFQ: submitted, open, two quotes ranked, award, confirm, fill, filled."""
    E = EventType
    await store.append(rfq_id, E.RFQ_SUBMITTED, requester,
                       submitted(requester=requester, client_rfq_id=client_rfq_id))
    await store.append(rfq_id, E.RFQ_STATE_CHANGED, "engine", state("created", "open"))
    await store.append(rfq_id, E.QUOTE_RECEIVED, "d1", quote("d1", f"{rfq_id}-q1", ask="100.5"))
    await store.append(rfq_id, E.QUOTE_RECEIVED, "d2", quote("d2", f"{rfq_id}-q2", ask="101"))
    await store.append(rfq_id, E.QUOTES_RANKED, "engine",
                       ranked([("d1", f"{rfq_id}-q1"), ("d2", f"{rfq_id}-q2")]))
    await store.append(rfq_id, E.AWARD_DECIDED, "engine", award(f"{rfq_id}-x1", "d1", f"{rfq_id}-q1"))
    await store.append(rfq_id, E.EXECUTION_CONFIRMED, "d1", confirmed(f"{rfq_id}-x1", "d1"))
    await store.append(rfq_id, E.FILL_RECORDED, "engine",
                       fill(f"{rfq_id}-f1", f"{rfq_id}-x1", "d1", quantity="10", notional="1005"))
    await store.append(rfq_id, E.RFQ_STATE_CHANGED, "engine", state("confirming", "filled", "done"))
