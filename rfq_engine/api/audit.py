"""``/api/v1/audit``: query, chain verification, CSV/JSONL export (compliance, admin)."""

from __future__ import annotations

import csv
import io
import json

from aiohttp import web

from rfq_engine.api.auth import require
from rfq_engine.api.body import query_int
from rfq_engine.api.rfqs import APP_KEY
from rfq_engine.api.serialize import error, json_response
from rfq_engine.domain import parse_ts
from rfq_engine.store import EventFilter

__all__ = ["routes"]

routes = web.RouteTableDef()


MAX_SEQ = 2**63 - 1
"""The largest sequence number a store holds (a signed 64-bit integer)."""


def _filter(request: web.Request, *, default_limit: int | None) -> EventFilter:
    q = request.query
    limit = default_limit
    if "limit" in q:
        limit = query_int(request, "limit", 0, 1, 10_000)
    after = query_int(request, "after_seq", 0, 0, MAX_SEQ)
    return EventFilter(
        rfq_id=q.get("rfq_id"), after_seq=after, types=q.getall("type", []) or None,
        actor=q.get("actor"),
        since=parse_ts(q["since"], "since") if "since" in q else None,
        until=parse_ts(q["until"], "until") if "until" in q else None,
        limit=limit)


@routes.get("/api/v1/audit/events")
@require("audit:read")
async def query_events(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    events = await app.store.events(_filter(request, default_limit=500))
    return json_response({"events": [e.to_dict() for e in events]})


@routes.get("/api/v1/audit/verify")
@require("audit:read")
async def verify_chain(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    await app.store.flush()
    report = await app.store.verify()
    return json_response({
        "ok": report.ok, "events": report.events, "head_seq": report.head_seq,
        "head_hash": report.head_hash, "first_bad_seq": report.first_bad_seq,
        "problem": report.problem, "checkpoint_seq": report.checkpoint_seq,
        "notes": list(report.notes), "seconds": round(report.seconds, 6)})


@routes.get("/api/v1/audit/export")
@require("audit:read")
async def export_events(request: web.Request) -> web.StreamResponse:
    app = request.app[APP_KEY]
    fmt = request.query.get("format", "jsonl")
    if fmt not in ("csv", "jsonl"):
        return error(422, "validation", "must be csv or jsonl", "format")
    flt = _filter(request, default_limit=None)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson",
        "Content-Disposition": f'attachment; filename="rfq-audit.{fmt}"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(["seq", "ts", "rfq_id", "type", "actor", "payload", "prev_hash", "hash"])
    async for event in app.store.stream(flt):
        d = event.to_dict()
        if fmt == "csv":
            writer.writerow([d["seq"], d["ts"], d["rfq_id"] or "", d["type"], d["actor"],
                             event.payload_json, d["prev_hash"], d["hash"]])
        else:
            buffer.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n")
        if buffer.tell() > 64_000:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response
