#!/usr/bin/env bash
# Start a local PostgreSQL for the control-store tests; safe to run again and again.
#
# Installs the Debian package if PostgreSQL is missing, starts its cluster, creates a
# superuser role for the current (root) user if there is none, and prints the URL the
# tests read from ASSAY_TEST_POSTGRES_URL. Meant for CI and development containers that
# run as root; elsewhere, point ASSAY_TEST_POSTGRES_URL at any server you can use.
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

version="$( (ls /etc/postgresql 2>/dev/null || true) | sort -V | tail -n1)"
if [ -z "${version}" ]; then
  echo "start-postgres: no PostgreSQL cluster found under /etc/postgresql" >&2
  exit 1
fi
if [ ! -d "/etc/postgresql/${version}/main" ]; then
  pg_createcluster "${version}" main >/dev/null
fi

status=0
pg_ctlcluster "${version}" main status >/dev/null 2>&1 || status=$?
if [ "${status}" -ne 0 ]; then
  pg_ctlcluster "${version}" main start
fi

# Wait until the server accepts connections (it may still be starting up).
for _ in $(seq 1 30); do
  if su postgres -c "pg_isready -q" 2>/dev/null; then
    break
  fi
  sleep 1
done

user="$(id -un)"
exists="$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = '${user}'\"")"
if [ "${exists}" != "1" ]; then
  su postgres -c "createuser -s '${user}'"
fi

echo "postgresql:///postgres"
