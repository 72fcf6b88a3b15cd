#!/usr/bin/env bash
# A user's own package depends on swift-ray BY VERSION and runs on a cluster: the check that
# Package.swift stays free of unsafeFlags (SwiftPM refuses them in any dependency required by
# version) and that the Ray product builds and runs from outside this checkout.
#
# It clones this repository's HEAD into a throwaway folder, tags the clone 0.1.0 (its only tag, so
# the test is of this commit whatever tags exist), builds scripts/user-package against
# file://<clone> from: "0.1.0", starts a head with the ray command built here and runs the program
# as a driver of it. Usage: scripts/user_package_test.sh [RAY_EXECUTABLE]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ray="${1:-$root/.build/debug/ray}"
work="$root/.build/user-package-test"
[ -x "$ray" ] || { echo "error: $ray is not built (swift build --product ray)"; exit 1; }

rm -rf "$work/swift-ray" "$work/app" "$work/cluster"
mkdir -p "$work/app" "$work/cluster"
git clone --quiet --no-local "$root" "$work/swift-ray"
git -C "$work/swift-ray" tag -l | xargs -r git -C "$work/swift-ray" tag -d >/dev/null
git -C "$work/swift-ray" tag 0.1.0

cp -R "$root/scripts/user-package/Sources" "$work/app/"
sed "s|@SWIFT_RAY_URL@|file://$work/swift-ray|" "$root/scripts/user-package/Package.swift.in" > "$work/app/Package.swift"
# The packages' own build folder, kept between runs (outside the checkout's tracked files): the first
# build compiles swift-ray's library modules and swift-protobuf; later ones only what changed.
(cd "$work/app" && swift build --scratch-path "$work/scratch" 2>&1 | tail -n 3)
grep -q '"version" : "0.1.0"' "$work/app/Package.resolved" || { echo "error: swift-ray was not resolved by version"; cat "$work/app/Package.resolved"; exit 1; }

stop() { "$ray" stop --temp-dir "$work/cluster" >/dev/null 2>&1 || true; }
trap stop EXIT
started="$("$ray" start --head --port 0 --num-cpus 2 --temp-dir "$work/cluster")"
address="$(printf '%s\n' "$started" | sed -n 's/.*GCS address: //p' | head -n 1)"
[ -n "$address" ] || { echo "error: no GCS address in:"; echo "$started"; exit 1; }

output="$(RAY_ADDRESS="$address" timeout 120 "$work/scratch/debug/UserApp")"
echo "$output"
expected="user-app: squares 385, sum task 385, actor 485"
[ "$output" = "$expected" ] || { echo "error: expected '$expected'"; exit 1; }
echo "user package: built against swift-ray 0.1.0 by version, ran on $address"
