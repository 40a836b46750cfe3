#!/usr/bin/env bash
# Runs a command with PostgreSQL and Redis reachable, exporting DATABASE_URL and KBSEARCH_TEST_REDIS_URL.
# Uses the machine's services on 127.0.0.1 when they answer; otherwise starts throwaway instances on
# spare ports (removed on exit), so `make test` passes on a machine where they are not running.
set -euo pipefail

cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "${DATABASE_URL:-}" ]; then
  if [ -n "$pg_bin" ] && "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 5432 && \
     psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
  elif [ -n "$pg_bin" ]; then
    dir=$(mktemp -d /tmp/kbsearch-pg.XXXXXX)
    chown postgres "$dir" 2>/dev/null || true
    run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    run_pg "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    run_pg "$pg_bin/pg_ctl" -D "$dir/data" -o "-p 55432 -k $dir -c listen_addresses=127.0.0.1" -l "$dir/log" -w start >/dev/null
    cleanup+=("run_pg '$pg_bin/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null; rm -rf '$dir'")
    run_pg "$pg_bin/createdb" -h 127.0.0.1 -p 55432 -U postgres test
    export DATABASE_URL="postgres://postgres@127.0.0.1:55432/test"
    echo "started a throwaway PostgreSQL on 127.0.0.1:55432"
  else
    echo "PostgreSQL is not installed: apt-get install postgresql" >&2
    exit 1
  fi
fi

if [ -z "${KBSEARCH_TEST_REDIS_URL:-}" ]; then
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    export KBSEARCH_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
  elif command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 56379 --save "" --appendonly no \
      --pidfile /tmp/kbsearch-redis-56379.pid >/dev/null
    cleanup+=("redis-cli -p 56379 shutdown nosave >/dev/null 2>&1")
    export KBSEARCH_TEST_REDIS_URL="redis://127.0.0.1:56379/15"
    echo "started a throwaway Redis on 127.0.0.1:56379"
  else
    echo "Redis is not installed: apt-get install redis-server" >&2
    exit 1
  fi
fi

"$@"
