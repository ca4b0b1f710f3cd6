#!/usr/bin/env bash
# Make PostgreSQL's server binaries (initdb, pg_ctl, postgres) available for the MLflow
# server-mode tests. Idempotent: does nothing when they are already there.
#
# The tests start and stop their own private cluster (tests/servers.py: initdb in a temp
# folder, pg_ctl start on a free 127.0.0.1 port, as the `postgres` user when run as
# root), so this script installs Debian's packages and starts nothing: no system cluster
# is created, nothing listens on 5432.
set -euo pipefail

find_initdb() {
    command -v initdb 2>/dev/null && return 0
    { ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null || true; } | sort -V | tail -n 1
}

if [ -z "$(find_initdb)" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: PostgreSQL is not installed and installing it needs root (apt-get install postgresql)" >&2
        exit 1
    fi
    # No "main" cluster on install: the tests make their own.
    mkdir -p /etc/postgresql-common
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        postgresql >/dev/null
fi

initdb="$(find_initdb)"
if [ -z "$initdb" ]; then
    echo "error: PostgreSQL installed but initdb not found" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "error: no 'postgres' user to own the test clusters (root may not run initdb)" >&2
    exit 1
fi
echo "PostgreSQL: $("$initdb" --version) at $(dirname "$initdb")"
