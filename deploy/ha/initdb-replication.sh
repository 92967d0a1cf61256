#!/bin/bash
# Runs once, at the primary's first start (docker-entrypoint-initdb.d): let the standby
# stream WAL as the rfq user over the compose network.
set -euo pipefail
echo "host replication rfq all scram-sha-256" >> "$PGDATA/pg_hba.conf"
