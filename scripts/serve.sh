#!/usr/bin/env bash
# Sets up what is missing, then runs the gateway in the foreground (127.0.0.1:8080 by default).
# Any arguments go to `faas serve` (e.g. --port 9000); FAAS_PORT, FAAS_HOST and FAAS_DATA_DIR work too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bin/faas.js serve "$@"  # run directly: its first lines start Node with the gateway's heap flag
