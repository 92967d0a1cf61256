#!/bin/bash
# The synchronous standby: on first start a base backup of the primary (-R writes
# standby.signal and primary_conninfo), then postgres as a hot standby. The primary's
# synchronous_standby_names = '*' makes this node the synchronous one: a commit on the
# primary returns only once this node has flushed it.
set -euo pipefail
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h pg-primary -U rfq; do sleep 1; done
  pg_basebackup -h pg-primary -U rfq -D "$PGDATA" -R -X stream -c fast
  chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c synchronous_commit=on -c synchronous_standby_names='*'
