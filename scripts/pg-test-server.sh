#!/usr/bin/env bash
# Print the URL of a PostgreSQL+PostGIS server for the test suite, starting a private one on a
# loopback port when none is given. Re-uses SITEWATCH_TEST_PG_URL when it is set and answers.
#   usage: SITEWATCH_TEST_PG_URL=$(scripts/pg-test-server.sh)
set -euo pipefail

port=${SITEWATCH_TEST_PG_PORT:-54329}
password=${SITEWATCH_TEST_PG_PASSWORD:-sitewatch}
here=$(cd "$(dirname "$0")/.." && pwd)

if [[ -n "${SITEWATCH_TEST_PG_URL:-}" ]]; then
  if psql "$SITEWATCH_TEST_PG_URL" -Atc "select 1" >/dev/null 2>&1; then
    echo "$SITEWATCH_TEST_PG_URL"; exit 0
  fi
  echo "pg-test-server: SITEWATCH_TEST_PG_URL does not answer; starting a local server" >&2
fi

pgver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
bin=/usr/lib/postgresql/$pgver/bin
url="postgresql://postgres:${password}@127.0.0.1:${port}/postgres"

if PGPASSWORD=$password psql -h 127.0.0.1 -p "$port" -U postgres -Atc "select 1" >/dev/null 2>&1; then
  echo "$url"; exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  # root: a Debian-managed cluster owned by the postgres user
  if ! pg_lsclusters -h | awk '{print $2}' | grep -qx sitewatch; then
    pg_createcluster "$pgver" sitewatch -p "$port" -- --auth-local=trust --auth-host=scram-sha-256 >&2
  fi
  pg_ctlcluster "$pgver" sitewatch start >&2 || true
  for _ in $(seq 1 30); do
    runuser -u postgres -- psql -p "$port" -Atc "select 1" >/dev/null 2>&1 && break
    sleep 0.5
  done
  runuser -u postgres -- psql -p "$port" -qc "ALTER USER postgres PASSWORD '${password}'" >&2
else
  # a normal user: a private data folder in the checkout
  data=$here/.pg/data
  if [[ ! -f $data/PG_VERSION ]]; then
    mkdir -p "$data"
    pwfile=$(mktemp); echo "$password" > "$pwfile"
    "$bin/initdb" -D "$data" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >&2
    rm -f "$pwfile"
  fi
  "$bin/pg_ctl" -D "$data" -o "-p $port -k $here/.pg -c listen_addresses=127.0.0.1" -l "$here/.pg/log" -w start >&2
fi

for _ in $(seq 1 30); do
  PGPASSWORD=$password psql -h 127.0.0.1 -p "$port" -U postgres -Atc "select 1" >/dev/null 2>&1 && break
  sleep 0.5
done
PGPASSWORD=$password psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE EXTENSION IF NOT EXISTS postgis" template1 >&2 || \
  echo "pg-test-server: PostGIS not available; tests run on plain PostgreSQL" >&2
echo "$url"
