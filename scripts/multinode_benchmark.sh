#!/usr/bin/env bash
# Multi-node figures on this machine: starts a local cluster of N nodes (the head at 127.0.0.1, the
# others at 127.0.0.2, ...) with the release `ray start`, runs the benchmark as a driver on the last
# node, and stops every node. Usage:
#   scripts/multinode_benchmark.sh transfer [N=2]     cross_node_transfer_1gib_gbps (ray-multinode-benchmark)
#   scripts/multinode_benchmark.sh tasks [N=4]        multi_node_tasks_async (ray-microbenchmark --only tasks_async)
#   scripts/multinode_benchmark.sh broadcast [N=4]    broadcast_1gib_to_3_nodes_s (ray-scalability broadcast)
# RAY_BENCH_PYTHON=/path/to/venv/bin/python runs Ray 2.60's side the same way instead
# (scripts/ray_reference_benchmark.py --cross-node / --only tasks_async, with Ray's own `ray start`).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-transfer}
nodes=${2:-$([ "$what" = transfer ] && echo 2 || echo 4)}
cpus=$(( $(nproc) > 1 ? $(nproc) / 2 : 1 ))
temp=$(mktemp -d /tmp/swift-ray-bench.XXXXXX)
if [ -n "${RAY_BENCH_PYTHON:-}" ]; then
  ray="$(dirname "$RAY_BENCH_PYTHON")/ray"
  export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
else
  swift build -c release --product ray >&2
  swift build -c release --product ray-multinode-benchmark >&2
  swift build -c release --product ray-microbenchmark >&2
  swift build -c release --product ray-scalability >&2
  ray=".build/release/ray"
fi
stop() {
  for i in $(seq "$nodes" -1 1); do RAY_TMPDIR="$temp/n$i" "$ray" stop >/dev/null 2>&1 || true; done
  [ -n "${RAY_BENCH_PYTHON:-}" ] && "$ray" stop --force >/dev/null 2>&1 || true
  rm -rf "$temp"
}
trap stop EXIT
mkdir -p "$temp/n1"
if [ -n "${RAY_BENCH_PYTHON:-}" ]; then
  "$ray" start --head --port 6390 --node-ip-address 127.0.0.1 --num-cpus "$cpus" --include-dashboard false >&2
  address=127.0.0.1:6390
else
  out=$(RAY_TMPDIR="$temp/n1" "$ray" start --head --port 0 --node-ip-address 127.0.0.1 --num-cpus "$cpus")
  address=$(echo "$out" | awk '/GCS address:/ {print $3}')
fi
for i in $(seq 2 "$nodes"); do
  mkdir -p "$temp/n$i"
  RAY_TMPDIR="$temp/n$i" "$ray" start --address "$address" --node-ip-address "127.0.0.$i" --num-cpus "$cpus" >&2
done
export RAY_ADDRESS=$address RAY_NODE_IP_ADDRESS=127.0.0.$nodes
case "$what" in
  transfer)
    if [ -n "${RAY_BENCH_PYTHON:-}" ]; then "$RAY_BENCH_PYTHON" scripts/ray_reference_benchmark.py --cross-node
    else .build/release/ray-multinode-benchmark 6; fi ;;
  tasks)
    if [ -n "${RAY_BENCH_PYTHON:-}" ]; then "$RAY_BENCH_PYTHON" scripts/ray_reference_benchmark.py --only tasks_async --address "$address"
    else .build/release/ray-microbenchmark --only tasks_async; fi ;;
  broadcast)
    if [ -n "${RAY_BENCH_PYTHON:-}" ]; then "$RAY_BENCH_PYTHON" scripts/ray_reference_benchmark.py --broadcast
    else .build/release/ray-scalability broadcast; fi ;;
  *) echo "usage: $0 transfer|tasks|broadcast [nodes]" >&2; exit 64 ;;
esac
