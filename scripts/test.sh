#!/usr/bin/env bash
# Sets up what is missing (plus what only the tests use), then runs the whole test suite.
# A dockerd this run had to start is stopped again, by its PID, when the run ends.
# Any arguments go to vitest (e.g. a file name or -t "pattern").
set -euo pipefail
cd "$(dirname "$0")/.."
export FAAS_SETUP_STATE=${FAAS_SETUP_STATE:-/var/lib/faas-setup}
pidfile="$FAAS_SETUP_STATE/dockerd.pid"
before=$(cat "$pidfile" 2>/dev/null || true)
stop_dockerd() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$pid" != "$before" ] && kill -0 "$pid" 2>/dev/null; then
    echo "[test] stopping the dockerd this run started (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
}
trap stop_dockerd EXIT
FAAS_SETUP_EXTRA_PACKAGES="tmux" bash scripts/setup.sh
npx vitest run "$@" </dev/null
