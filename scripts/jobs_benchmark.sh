#!/usr/bin/env bash
# Jobs API figures of swift-ray (release `ray`) and of Ray 2.60, one after the other in one sitting,
# measured by the same client (scripts/jobs_benchmark.py; Ray's own CLI for the end-to-end figure).
# Usage: scripts/jobs_benchmark.sh [RAY_VENV]   (default: make's ray-venv, ~/.cache/swift-ray/ray-2.60.0-venv)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$HOME/.cache/swift-ray/ray-2.60.0-venv}"
ours="$root/.build/release/ray"
[ -x "$ours" ] || { echo "build it first: swift build -c release --product ray"; exit 1; }
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
unset RAY_ADDRESS RAY_API_SERVER_ADDRESS
work="$(mktemp -d)"
trap '"$ours" stop --temp-dir "$work/ours" >/dev/null 2>&1 || true; "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

started="$("$ours" start --head --port 0 --dashboard-port 0 --num-cpus 2 --temp-dir "$work/ours")"
url="$(printf '%s\n' "$started" | sed -n 's/.*Dashboard address: //p' | head -n 1)"
"$venv/bin/python" "$root/scripts/jobs_benchmark.py" --address "$url" --label swift-ray --ray-cli "$venv/bin/ray"
"$ours" stop --temp-dir "$work/ours" >/dev/null

"$venv/bin/ray" start --head --node-ip-address 127.0.0.1 --port 6390 --dashboard-port 8290 --num-cpus 2 --include-dashboard true >/dev/null 2>&1
"$venv/bin/python" "$root/scripts/jobs_benchmark.py" --address http://127.0.0.1:8290 --label ray-2.60 --ray-cli "$venv/bin/ray"
