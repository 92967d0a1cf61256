"""Audit events: the catalogue of types, the event record, and the hash chain.

Every event is one row: a global ``seq`` assigned by the single writer, a UTC
microsecond ``ts``, the ``rfq_id`` (None for engine-wide events), a past-tense ``type``,
the ``actor`` (user, dealer id, ``engine`` or ``program:<name>``), a canonical-JSON
``payload``, ``prev_hash`` and ``hash``:

    hash = sha256(prev_hash "\\n" canonical_json([seq, ts, rfq_id or "", type, actor])
                  "\\n" payload_json)

The first event's ``prev_hash`` is 64 zeros. Editing any field of any row changes its
hash; the next row's ``prev_hash`` then no longer matches, so ``verify`` names the first
bad ``seq``. Deleting the newest rows leaves a valid but shorter chain: the writer also
records the chain head in a checkpoint kept outside the database (see ``checkpoint.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rfq_engine.domain import canonical_json, format_ts
from rfq_engine.domain.events import EventType

__all__ = ["GENESIS_HASH", "AuditEvent", "EventType", "chain_hash"]

GENESIS_HASH = "0" * 64


# The catalogue of types, and one typed class per type, live in ``rfq_engine.domain.events``
# (generated into docs/audit.md); re-exported here for the store's readers.


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    ts: datetime
    rfq_id: str | None
    type: str
    actor: str
    payload_json: str
    prev_hash: str
    hash: str

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.payload_json)
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON form for export: the payload as an object, ts as ``...Z``."""
        return {
            "seq": self.seq,
            "ts": format_ts(self.ts),
            "rfq_id": self.rfq_id,
            "type": self.type,
            "actor": self.actor,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def chain_hash(
    prev_hash: str,
    seq: int,
    ts: datetime | str,
    rfq_id: str | None,
    type_: str,
    actor: str,
    payload_json: str,
) -> str:
    ts_text = ts if isinstance(ts, str) else format_ts(ts)
    header = canonical_json([seq, ts_text, rfq_id or "", type_, actor])
    data = f"{prev_hash}\n{header}\n{payload_json}".encode()
    return hashlib.sha256(data).hexdigest()
