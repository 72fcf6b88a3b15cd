#!/usr/bin/env bash
# autoscaler_scale_up_s / autoscaler_scale_down_s on the local provider (release build):
#   scale up:   an {"accel": 1} task no node can run, from its submission to its result on a freshly
#               started node (the integration app's as-accel scenario prints scale_up_ms);
#   scale down: from that result until the node has left the cluster, less idle_timeout (3 s here).
# Usage: scripts/autoscaler_benchmark.sh [runs]   (builds nothing: `swift build -c release` first)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
BIN="$(swift build -c release --show-bin-path)"
WORK="$(mktemp -d /tmp/swift-ray-autoscaler-bench.XXXXXX)"
export GRPC_VERBOSITY=NONE RAY_TMPDIR="$WORK/head"
cat > "$WORK/cluster.yaml" <<'YAML'
cluster_name: bench
max_workers: 2
idle_timeout_minutes: 0.05
provider: {type: local}
head_node_type: head
available_node_types:
  head: {resources: {CPU: 1}, max_workers: 0}
  accel: {resources: {CPU: 1, accel: 1}, max_workers: 1}
YAML
trap '"$BIN/ray" stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$BIN/ray" start --head --port 0 --num-cpus 1 --autoscaling-config "$WORK/cluster.yaml" >/dev/null
ADDR="$(cat "$RAY_TMPDIR/ray_current_cluster")"
accel_nodes() { "$BIN/ray" status --address "$ADDR" | grep -c " accel$" || true; }
for run in $(seq "$RUNS"); do
  out="$(RAY_ADDRESS="$ADDR" RAY_TMPDIR="$WORK/app" "$BIN/ray-integration-app" as-accel)"
  done_ns=$(date +%s%N)
  up_ms=$(sed -n 's/^scale_up_ms=//p' <<<"$out")
  while [[ "$(accel_nodes)" != "0" ]]; do sleep 0.05; done
  gone_ns=$(date +%s%N)
  down_ms=$(( (gone_ns - done_ns) / 1000000 - 3000 ))
  awk -v r="$run" -v u="$up_ms" -v d="$down_ms" \
    'BEGIN { printf "run %d: autoscaler_scale_up_s %.3f  autoscaler_scale_down_s %.3f (after the 3 s idle timeout)\n", r, u / 1000, d / 1000 }'
done
