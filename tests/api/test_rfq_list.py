"""``GET /api/v1/rfqs``: the filters and keyset pages of the store's RfqQuery, over HTTP."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.api.conftest import Api, auth, rfq_body
from tests.api.test_hostile_input import expect_error


async def listed(api: Api, **params: Any) -> dict[str, Any]:
    resp = await api.client.get("/api/v1/rfqs", params=params, headers=auth("dave"))
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    assert set(data) == {"rfqs", "next"}
    return data


def ids(page: dict[str, Any]) -> list[str]:
    return [r["rfq_id"] for r in page["rfqs"]]


async def walk(api: Api, limit: int, **params: Any) -> tuple[list[str], int]:
    """Every RFQ, following ``next``; and how many pages that took."""
    walked: list[str] = []
    pages = 0
    page = await listed(api, limit=limit, **params)
    while True:
        pages += 1
        walked += ids(page)
        if page["next"] is None:
            return walked, pages
        page = await listed(api, limit=limit, after=page["next"], **params)


async def make(api: Api, user: str, **overrides: Any) -> str:
    resp = await api.client.post("/api/v1/rfqs", json=rfq_body(**overrides), headers=auth(user))
    assert resp.status == 201, await resp.text()
    rfq_id: str = (await resp.json())["rfq_id"]
    return rfq_id


async def test_pages_filters_and_the_next_cursor(api: Api) -> None:
    made = [await make(api, user) for user in ("alice", "bob", "alice", "bob", "alice")]
    for rfq_id in made:
        await api.wait_terminal(rfq_id)
    live = await make(api, "bob", window_ms=60_000, close_policy="deadline")  # stays open
    await api.wait_state(live, "open")
    await api.app.store.flush()  # the listener hears "open" as it is queued; the list reads the store
    newest_first = [live, *reversed(made)]

    everything = await listed(api)
    assert ids(everything) == newest_first and everything["next"] is None
    assert await walk(api, 2) == (newest_first, 3)
    assert await walk(api, 4) == (newest_first, 2)
    assert await walk(api, 6) == (newest_first, 1)  # no empty page after a full one
    assert ids(await listed(api, requester="bob")) == [live, made[3], made[1]]
    assert await walk(api, 1, requester="bob", state="filled") == ([made[3], made[1]], 2)
    assert ids(await listed(api, state="open")) == [live]
    two = await api.client.get("/api/v1/rfqs?state=open&state=filled", headers=auth("dave"))
    assert ids(await two.json()) == newest_first
    assert ids(await listed(api, mandate="treasury")) == newest_first
    assert await listed(api, mandate="other") == {"rfqs": [], "next": None}
    created = everything["rfqs"][3]["created_at"]  # made[2]'s
    assert ids(await listed(api, since=created)) == newest_first[:4]
    assert ids(await listed(api, until=created)) == newest_first[4:]
    assert ids(await listed(api, since=created, requester="alice", limit=1)) == [made[4]]
    cancel = await api.client.post(f"/api/v1/rfqs/{live}/cancel", headers=auth("bob"))
    assert cancel.status == 202


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(("query", "field"), [
    ("after=not-a-cursor!", "after"),
    ("after=" + b64("no-space-here"), "after"),
    ("after=" + b64("yesterday r1"), "after"),
    ("after=" + b64("2026-11-21T10:00:00Z "), "after"),
    ("after=" + b64("2026-11-21T10:00:00 r1"), "after"),  # no time zone
    ("after=%C3%A9", "after"),
    ("after=" + "A" * 401, "after"),
    ("after=" + base64.urlsafe_b64encode(b"\xff\xfe r1").decode(), "after"),
    ("since=tomorrow", "since"),
    ("until=9999-12-31T23:59:59-23:59", "until"),
    ("state=sideways", "state"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
])
async def test_bad_list_parameters_are_422_naming_them(api: Api, query: str, field: str) -> None:
    resp = await api.client.get(f"/api/v1/rfqs?{query}", headers=auth("dave"))
    await expect_error(resp, 422, field)


async def test_a_cursor_is_a_position_not_a_stored_rfq(api: Api) -> None:
    made = await make(api, "alice")
    await api.wait_terminal(made)
    page = await listed(api, after=b64("2999-01-01T00:00:00.000000Z zzz"))
    assert ids(page) == [made] and page["next"] is None
    assert await listed(api, after=b64("2000-01-01T00:00:00Z r1")) == {"rfqs": [], "next": None}
