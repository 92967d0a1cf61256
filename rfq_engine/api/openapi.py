"""The OpenAPI 3.1 document of ``/api/v1``. ``tests/api`` checks live responses against it."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

DEC = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "description": "decimal as a string"}
TS = {"type": "string", "pattern": r"Z$", "description": "UTC ISO 8601 with microseconds"}
NDEC = {"anyOf": [DEC, {"type": "null"}]}
NTS = {"anyOf": [TS, {"type": "null"}]}
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": required if required is not None else list(props)}


def _strict(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A request body: any other key is a 422 naming it."""
    return {**_obj(props, required), "additionalProperties": False}


DEC_IN = {"type": "string", "maxLength": 100,
          "description": "decimal as a string (exponent notation allowed): at most 28 "
                         "significant digits and 1E-30 <= |x| < 1E+31, or 0"}
TEXT = {"type": "string", "maxLength": 64}
STRIKE = {"type": "string", "maxLength": 101,
          "description": "a price, or a percentage of spot like \"87.5%\""}
_PLAIN: dict[str, Any] = {"underlying": TEXT, "quote_ccy": TEXT}
INSTRUMENT_KEYS: dict[str, dict[str, Any]] = {
    "spot": _PLAIN, "perpetual": _PLAIN, "future": {**_PLAIN, "expiry": STR},
    "option": {**_PLAIN, "expiry": STR, "strike": DEC_IN,
               "option_type": {"enum": ["put", "call"]}},
    "hashprice_ndf": {**_PLAIN, "start": STR, "days": {"type": "integer"}},
}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": STR, "reason": STR, "field": STR}, ["error", "reason"]),
    "RfqSummary": _obj({
        "rfq_id": STR, "client_rfq_id": NSTR, "requester": STR, "mandate": STR,
        "direction": {"enum": ["buy", "sell", "two_way"]}, "quantity": DEC, "quantity_unit": STR,
        "state": {"enum": ["created", "pending_approval", "open", "awarding", "confirming",
                           "unresolved", "filled", "partially_filled", "not_filled", "cancelled", "expired",
                           "rejected", "failed"]},
        "notional": NDEC, "filled_quantity": DEC, "created_at": TS, "updated_at": TS,
        "reason": STR, "spec": {"type": "object"}}),
    "Quote": _obj({"rfq_id": STR, "dealer_id": STR, "quote_id": STR, "bid": NDEC, "ask": NDEC,
                   "quantity": NDEC, "valid_until": NTS, "received_at": TS,
                   "status": {"enum": ["received", "valid", "rejected"]},
                   "rank": {"type": ["integer", "null"]}, "reason": STR}),
    "Award": _obj({"execution_id": STR, "rfq_id": STR, "dealer_id": STR, "quote_id": STR,
                   "side": {"enum": ["bid", "ask"]}, "price": DEC, "quantity": DEC,
                   "confirm_by": TS,
                   "status": {"enum": ["pending", "confirmed", "rejected", "unknown",
                                       "unresolved"]},
                   "reason": STR}),
    "Fill": _obj({"fill_id": STR, "execution_id": STR, "rfq_id": STR, "dealer_id": STR,
                  "mandate": STR, "price": DEC, "quantity": DEC, "notional": DEC,
                  "dealer_trade_id": STR, "filled_at": TS,
                  "last_date": {"type": ["string", "null"]}}),
    "Rfq": {"allOf": [_ref("RfqSummary"), _obj({
        "quotes": {"type": "array", "items": _ref("Quote")},
        "awards": {"type": "array", "items": _ref("Award")},
        "fills": {"type": "array", "items": _ref("Fill")},
        "decision": {"type": ["object", "null"],
                     "description": "the decision record: every quote with rank, each rule's "
                                    "verdict and reason, the winner and why"}})]},
    "Instrument": {"oneOf": [_strict({"kind": {"const": kind}, **INSTRUMENT_KEYS[kind]},
                                     ["kind", *INSTRUMENT_KEYS[kind]])
                             for kind in INSTRUMENT_KEYS]},
    "Leg": _strict({"instrument": _ref("Instrument"), "side": {"enum": ["buy", "sell"]},
                    "ratio": DEC_IN}, ["instrument", "side"]),
    "CreateRfq": _strict({
        "legs": {"type": "array", "minItems": 1, "maxItems": 4, "items": _ref("Leg")},
        "direction": {"enum": ["buy", "sell", "two_way"]},
        "private_side": {"enum": ["buy", "sell"]}, "quantity": DEC_IN,
        "quantity_unit": TEXT, "dealers": {"type": "array", "items": STR},
        "requester": {**TEXT, "description": "the caller; any other name is a 403"},
        "window_ms": {"type": "integer"}, "allow_partial": {"type": "boolean"},
        "mandate": TEXT, "limit_price": DEC_IN,
        "client_rfq_id": {"type": "string", "maxLength": 200,
                          "description": "the Idempotency-Key header, if both are given"},
        "settlement": {"enum": ["cash", "physical"]},
        "hedge": _strict({"forecast_quantity": DEC_IN, "hedged_quantity": DEC_IN,
                          "period": TEXT}, ["forecast_quantity"]),
        "tags": {"type": "array", "maxItems": 16, "items": TEXT},
        "require_approval": {"type": "boolean"},
        "close_policy": {"enum": ["deadline", "all_answered"]}},
        ["legs", "direction", "quantity", "dealers"]),
    "PriceScenario": _strict({
        "strategy": {"enum": ["future", "put", "collar", "unhedged"]}, "spot": DEC_IN,
        "cost": DEC_IN, "quantity": DEC_IN, "prices": {"type": "array", "items": DEC_IN},
        "future_price": DEC_IN, "put": STRIKE, "call": STRIKE, "premium": DEC_IN,
        "hedge_ratio": DEC_IN}, ["strategy", "spot", "prices"]),
    "NdfScenario": _strict({
        "strategy": {"const": "ndf"}, "unit_price": DEC_IN, "hashrate_ph": DEC_IN,
        "days": {"type": "integer"}, "settle_rates": {"type": "array", "items": DEC_IN},
        "side": {"enum": ["short", "long"]}, "hedge_ratio": DEC_IN, "power_mw": DEC_IN,
        "power_price": DEC_IN, "opex_only": {"type": "boolean"}},
        ["strategy", "unit_price", "hashrate_ph", "days", "settle_rates"]),
    "PostCollateral": _strict({
        "dealer": {**TEXT, "description": "a [collateral.<dealer>] desk or a [risk.venues.<dealer>] venue"},
        "amounts": {"type": "object", "minProperties": 1, "maxProperties": 8, "additionalProperties": DEC_IN,
                    "description": "the collateral now posted in total, by currency (USD, BTC...)"},
        "note": {"type": "string", "maxLength": 1000}}, ["dealer", "amounts"]),
    "RecordProduction": _strict({
        "program": TEXT, "period": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"},
        "quantity": {**DEC_IN, "description": "in the forecast's unit: BTC, or PH/s for an NDF program"},
        "note": {"type": "string", "maxLength": 1000}}, ["program", "period", "quantity"]),
    "Reason": _strict({"reason": {"type": "string", "maxLength": 1000}}, []),
    "NoFields": _strict({}, []),
    "AuditEvent": _obj({"seq": {"type": "integer"}, "ts": TS, "rfq_id": NSTR, "type": STR,
                        "actor": STR, "payload": {"type": "object"}, "prev_hash": STR,
                        "hash": STR}),
    "VerifyReport": _obj({"ok": {"type": "boolean"}, "events": {"type": "integer"},
                          "head_seq": {"type": "integer"}, "head_hash": STR,
                          "first_bad_seq": {"type": ["integer", "null"]}, "problem": NSTR,
                          "checkpoint_seq": {"type": ["integer", "null"]},
                          "notes": {"type": "array", "items": STR},
                          "seconds": {"type": "number"}}),
    "Me": _obj({"name": STR, "roles": {"type": "array", "items": {
                    "enum": ["trader", "approver", "compliance", "admin", "ops"]}},
                "may": {"type": "array", "items": STR}}),
    "Dealer": _obj({"dealer_id": STR, "kind": STR, "online": {"type": "boolean"},
                    "scorecard": {"type": ["object", "null"]}}),
}


def _resp(schema: dict[str, Any] | None, text: str) -> dict[str, Any]:
    if schema is None:
        return {"description": text}
    return {"description": text, "content": {"application/json": {"schema": schema}}}


ERR = {code: _resp(_ref("Error"), text) for code, text in {
    "401": "no valid bearer token, or an expired one", "403": "the role may not do this",
    "422": "validation error naming the field",
    "429": "too many failed authentications from this address (Retry-After)"}.items()}
BAD_BODY = {code: _resp(_ref("Error"), text) for code, text in {
    "400": "not UTF-8, not JSON, a number over 100 digits, nesting over 32 levels, or not an "
           "object", "413": "body over 1 MiB"}.items()}


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}
RFQ_ID = [{"name": "rfq_id", "in": "path", "required": True, "schema": STR}]


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/v1/rfqs": {
            "post": {"summary": "Create an RFQ (traders). Idempotency-Key makes a retry return "
                                "the same RFQ (200 + Idempotent-Replayed), never a second one.",
                     "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": STR}],
                     "requestBody": _body("CreateRfq"),
                     "responses": {"201": _resp(_ref("Rfq"), "created"),
                                   "200": _resp(_ref("Rfq"), "replay of an earlier request"),
                                   **BAD_BODY,
                                   "409": _resp(_ref("Error"), "key reused for another request"),
                                   "503": _resp(_ref("Error"), "halted by the kill switch, or busy: "
                                                 "max_live_rfqs RFQs live (Retry-After)"),
                                   **ERR}},
            "get": {"summary": "List RFQs, newest first, one page at a time: `after` is the "
                               "`next` of the page before (null on the last page)",
                    "parameters": [{"name": n, "in": "query", "schema": STR}
                                   for n in ("state", "requester", "mandate", "since", "until",
                                             "after", "limit")],
                    "responses": {"200": _resp(_obj({"rfqs": {"type": "array",
                                                              "items": _ref("RfqSummary")},
                                                     "next": NSTR}), "RFQs"), **ERR}}},
        "/api/v1/rfqs/{rfq_id}": {"get": {
            "summary": "One RFQ with quotes, awards, fills and the decision record",
            "parameters": RFQ_ID,
            "responses": {"200": _resp(_ref("Rfq"), "the RFQ"),
                          "404": _resp(_ref("Error"), "unknown"), **ERR}}},
        "/api/v1/audit/events": {"get": {
            "summary": "Query the audit log (compliance, admin)",
            "parameters": [{"name": n, "in": "query", "schema": STR} for n in
                           ("rfq_id", "type", "actor", "since", "until", "after_seq", "limit")],
            "responses": {"200": _resp(_obj({"events": {"type": "array",
                                                        "items": _ref("AuditEvent")}}), "events"),
                          **ERR}}},
        "/api/v1/audit/verify": {"get": {"summary": "Verify the hash chain",
                                         "responses": {"200": _resp(_ref("VerifyReport"),
                                                                    "report"), **ERR}}},
        "/api/v1/audit/export": {"get": {
            "summary": "Stream events as CSV or JSON lines",
            "parameters": [{"name": "format", "in": "query", "schema": {"enum": ["csv", "jsonl"]}}],
            "responses": {"200": {"description": "the events",
                                  "content": {"text/csv": {}, "application/x-ndjson": {}}},
                          **ERR}}},
        "/api/v1/me": {"get": {
            "summary": "The caller: name, roles and the actions they allow (any valid token)",
            "responses": {"200": _resp(_ref("Me"), "the caller"), **ERR}}},
        "/api/v1/dealers": {"get": {
            "summary": "Dealers with live status and scorecards",
            "responses": {"200": _resp(_obj({"since": TS, "dealers": {
                "type": "array", "items": _ref("Dealer")}}), "dealers"), **ERR}}},
        "/api/v1/readiness": {"get": {
            "summary": "The checks behind /readyz (ops, compliance, admin): store, each dealer, "
                       "each transport, the kill switch",
            "responses": {code: _resp(_obj({"ready": {"type": "boolean"},
                                            "checks": {"type": "object"}}), text)
                          for code, text in (("200", "ready"), ("503", "not ready"))} | ERR}},
        "/api/v1/mandates": {"get": {"summary": "Configured mandates", "responses": {
            "200": _resp(_obj({"mandates": {"type": "object"}}), "mandates"), **ERR}}},
        "/api/v1/admin/halt": {
            "get": {"summary": "Kill switch status", "responses": {
                "200": _resp(_obj({"halted": {"type": "boolean"}, "reason": NSTR}), "status"),
                **ERR}},
            "post": {"summary": "Kill switch (admin): refuse new RFQs and cancel open ones",
                     "requestBody": _body("Reason"),
                     "responses": {"200": _resp(_obj({"halted": {"type": "boolean"},
                                                      "reason": STR,
                                                      "cancelled": {"type": "array",
                                                                    "items": STR}}), "halted"),
                                   **BAD_BODY, **ERR}}},
        "/api/v1/admin/resume": {"post": {"summary": "Accept new RFQs again (admin)",
                                          "requestBody": _body("NoFields", False),
                                          "responses": {"200": _resp(_obj({"halted": {
                                              "type": "boolean"}}), "resumed"),
                                              **BAD_BODY, **ERR}}},
        "/api/v1/stream": {"get": {"summary": "WebSocket of live RFQ, quote, award and fill "
                                              "events (?token= for browsers)",
                                   "responses": {"101": {"description": "switching protocols"},
                                                 **ERR}}},
    }
    paths["/api/v1/hedge/scenario"] = {"post": {
        "summary": "Hedged vs unhedged revenue and P&L across prices at expiry (strategy "
                   "future/put/collar), or NDF outcomes at settlement rates (strategy ndf)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [_ref("PriceScenario"), _ref("NdfScenario")]}}}},
        "responses": {"200": _resp(_obj({"rows": {"type": "array"},
                                         "chart": {"type": "object"}}), "the table and chart"),
                      **BAD_BODY, **ERR}}}
    program_view = _obj({"name": STR, "strategy": STR, "schedule": STR, "timezone": STR,
                         "next_runs": {"type": "array", "items": TS},
                         "due": {"type": ["object", "null"]},
                         "decisions": {"type": "array", "items": {"type": "object"}},
                         "coverage": {"type": ["array", "null"]}})
    paths["/api/v1/hedge/programs"] = {"get": {
        "summary": "Hedge programs: terms, next scheduled runs, what the latest scheduled time "
                   "plans, the latest decision and coverage (this month and the next)",
        "responses": {"200": _resp(_obj({"as_of": TS, "programs": {
            "type": "array", "items": program_view}}), "programs"), **ERR}}}
    paths["/api/v1/hedge/programs/{name}"] = {"get": {
        "summary": "One hedge program with its recorded decisions, newest first",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": STR},
                       {"name": "limit", "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
        "responses": {"200": _resp(program_view, "the program"),
                      "404": _resp(_ref("Error"), "no such program"), **ERR}}}
    alert = _obj({"kind": STR, "subject": STR, "state": STR, "message": STR,
                  "value": {"type": ["string", "null"]}, "threshold": {"type": ["string", "null"]},
                  "program": {"type": ["string", "null"]}, "period": {"type": ["string", "null"]}})
    paths["/api/v1/hedge/risk"] = {"get": {
        "summary": "The risk monitor (docs/risk.md): exposure against credit lines, desk and venue "
                   "margin, funding, coverage, liquidity, the active alerts, and each program "
                   "against the market",
        "responses": {"200": _resp(_obj({
            "as_of": TS, "risk": {"type": "object"}, "active": {"type": "array", "items": alert},
            "performance": {"type": "array", "items": {"type": "object"}},
            "thresholds": {"type": "object"}}), "the figures"), **ERR}}}
    paths["/api/v1/hedge/risk/alerts"] = {"get": {
        "summary": "The risk alerts raised and not cleared (the web UI's banner)",
        "responses": {"200": _resp(_obj({"as_of": TS, "active": {"type": "array", "items": alert}}),
                                   "the active alerts"), **ERR}}}
    for name, schema, text in (
            ("collateral", "PostCollateral", "Record the collateral now posted in total with a desk or at a "
             "venue (traders, admin): a collateral.posted audit event; the latest per dealer replaces the "
             "config's figure in the risk monitor and the collateral gate"),
            ("production", "RecordProduction", "Record a program's realized production in a month (traders, "
             "admin): a production.realized audit event, used by the performance report and the hedge file")):
        paths[f"/api/v1/hedge/{name}"] = {"post": {
            "summary": text + ". Idempotency-Key makes a retry return the same event",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": STR}],
            "requestBody": _body(schema),
            "responses": {"201": _resp(_ref("AuditEvent"), "the event, durable"),
                          "200": _resp(_ref("AuditEvent"), "replay of an earlier request"),
                          "409": _resp(_ref("Error"), "key reused for another request"),
                          **BAD_BODY, **ERR}}}
    for action in ("cancel", "approve", "refuse"):
        paths[f"/api/v1/rfqs/{{rfq_id}}/{action}"] = {"post": {
            "summary": {"cancel": "Cancel (own RFQs; admin any)",
                        "approve": "Approve (approvers; never one's own)",
                        "refuse": "Refuse with a reason (approvers)"}[action],
            "parameters": RFQ_ID,
            "requestBody": _body("NoFields" if action == "approve" else "Reason",
                                 action == "refuse"),
            "responses": {"202": _resp({"type": "object"}, "accepted"),
                          "404": _resp(_ref("Error"), "unknown"),
                          "409": _resp(_ref("Error"), "wrong state"), **BAD_BODY, **ERR}}}
    paths["/api/v1/rfqs/{rfq_id}/executions/{execution_id}/resolve"] = {"post": {
        "summary": "Resolve an unresolved award (approvers, admin; never one's own RFQ)",
        "parameters": [*RFQ_ID, {"name": "execution_id", "in": "path", "required": True,
                                  "schema": STR}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["executed", "evidence"],
            "properties": {"executed": {"type": "boolean"}, "evidence": STR,
                           "dealer_trade_id": STR, "quantity": DEC, "price": DEC}}}}},
        "responses": {"200": _resp(_obj({
            "rfq_id": STR, "execution_id": STR, "executed": {"type": "boolean"},
            "quantity": NDEC, "price": NDEC, "dealer_trade_id": STR, "resolved_by": STR}),
            "the decision, durable"),
            "404": _resp(_ref("Error"), "unknown RFQ or execution"),
            "409": _resp(_ref("Error"), "already settled, or still in last look"),
            "422": _resp(_ref("Error"), "a bad or unknown field"), **BAD_BODY, **ERR}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rfq-engine API", "version": "1"},
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
