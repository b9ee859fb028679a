#!/usr/bin/env bash
# Installs whatever is missing to run the platform on Debian 12 as root, and nothing that is already there:
# Debian packages (docker.io, musl-tools, busybox-static, mmdebstrap, build tools), a running dockerd, npm dependencies,
# the compiled TypeScript, the in-sandbox agent and the local base image. Safe to run again and again.
#
# Environment: FAAS_SETUP_STATE (folder for the dockerd pid file and log, default /var/lib/faas-setup),
# FAAS_SETUP_EXTRA_PACKAGES (more Debian packages to ensure, e.g. tmux for the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${FAAS_SETUP_STATE:-/var/lib/faas-setup}
DOCKER_SOCK=${FAAS_DOCKER_SOCKET:-/var/run/docker.sock}
mkdir -p "$STATE_DIR"
log() { echo "[setup] $*"; }

# --- Debian packages -------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
{ command -v make >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1; } || missing+=(build-essential)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The Debian built-in images (faas/debian, python, node, build) are bootstrapped with mmdebstrap.
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
for extra in ${FAAS_SETUP_EXTRA_PACKAGES:-}; do
  dpkg-query -W -f='${Status}' "$extra" 2>/dev/null | grep -q 'ok installed' || missing+=("$extra")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "[setup] missing Debian packages (${missing[*]}) and not root: install them and run again" >&2; exit 1; }
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >"$STATE_DIR/apt-update.log" 2>&1 || { cat "$STATE_DIR/apt-update.log" >&2; exit 1; }
  apt-get install -y -qq "${missing[@]}" </dev/null >"$STATE_DIR/apt-install.log" 2>&1 \
    || { tail -n 40 "$STATE_DIR/apt-install.log" >&2; exit 1; }
fi

# --- Docker engine ---------------------------------------------------------------------------------------
engine_up() { node -e '
  const s = process.argv[1];
  require("http").get({ socketPath: s, path: "/_ping", timeout: 2000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1))
    .on("error", () => process.exit(1)).on("timeout", () => process.exit(1));' "$DOCKER_SOCK"; }
if ! engine_up; then
  log "starting dockerd (log: $STATE_DIR/dockerd.log)"
  # Fully detached: its own session, no stdin, output to a file, so it never holds the caller's pipes open.
  setsid dockerd </dev/null >>"$STATE_DIR/dockerd.log" 2>&1 &
  echo $! >"$STATE_DIR/dockerd.pid"
  for _ in $(seq 1 60); do engine_up && break; sleep 0.5; done
  engine_up || { tail -n 30 "$STATE_DIR/dockerd.log" >&2; echo "[setup] dockerd did not come up" >&2; exit 1; }
fi

# --- npm dependencies and build ----------------------------------------------------------------------------
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.faas-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  log "installing npm dependencies (native modules compile here; this takes a few minutes the first time)"
  npm ci --no-audit --no-fund --loglevel=error </dev/null
  echo "$lock_hash" >node_modules/.faas-lock-hash
fi
log "building TypeScript"
npx tsc -b
log "building the in-sandbox agent"
make -s -C agent
log "building base images (the Debian ones take about 6 minutes the first time, then nothing)"
node bin/faas.js images build
log "ready"
