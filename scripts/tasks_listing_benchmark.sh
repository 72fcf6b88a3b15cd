#!/usr/bin/env bash
# api_v0_tasks_10k_ms of swift-ray (release `ray` and `ray-integration-app`) and of Ray 2.60, one after
# the other in one sitting, timed by the same client (scripts/tasks_listing_benchmark.py).
# Usage: scripts/tasks_listing_benchmark.sh [RAY_VENV]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$HOME/.cache/swift-ray/ray-2.60.0-venv}"
ours="$root/.build/release/ray"
app="$root/.build/release/ray-integration-app"
[ -x "$ours" ] && [ -x "$app" ] || { echo "build first: swift build -c release --product ray && swift build -c release --product ray-integration-app"; exit 1; }
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
unset RAY_ADDRESS RAY_API_SERVER_ADDRESS
work="$(mktemp -d)"
trap '"$ours" stop --temp-dir "$work/ours" >/dev/null 2>&1 || true; "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

started="$("$ours" start --head --port 0 --dashboard-port 0 --num-cpus 2 --temp-dir "$work/ours")"
url="$(printf '%s\n' "$started" | sed -n 's/.*Dashboard address: //p' | head -n 1)"
gcs="$(printf '%s\n' "$started" | sed -n 's/.*GCS address: //p' | head -n 1)"
RAY_ADDRESS="$gcs" "$app" tasks 10000 >/dev/null
"$venv/bin/python" "$root/scripts/tasks_listing_benchmark.py" --address "$url" --label swift-ray
"$ours" stop --temp-dir "$work/ours" >/dev/null

"$venv/bin/ray" start --head --node-ip-address 127.0.0.1 --port 6391 --dashboard-port 8291 --num-cpus 2 --include-dashboard true >/dev/null 2>&1
"$venv/bin/python" "$root/scripts/tasks_listing_benchmark.py" --address http://127.0.0.1:8291 --ray-driver 127.0.0.1:6391 --label ray-2.60
