#!/usr/bin/env bash
# Regenerates Sources/RayProtos/Generated/*.pb.swift from Protos/.
# Needs Debian's protoc (apt: protobuf-compiler). Builds protoc-gen-swift from the swift-protobuf
# version this package resolved (about a minute) unless PROTOC_GEN_SWIFT points at one.
# Not part of `make test`: the generated files are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
PLUGIN="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$PLUGIN" ]]; then
  swift package resolve
  swift build -c release --product protoc-gen-swift >&2
  PLUGIN="$(swift build -c release --show-bin-path)/protoc-gen-swift"
fi
OUT=Sources/RayProtos/Generated
rm -rf "$OUT"
mkdir -p "$OUT"
find Protos -name '*.proto' -print0 | sort -z | xargs -0 protoc --plugin=protoc-gen-swift="$PLUGIN" \
  --swift_out="$OUT" --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores -I Protos
echo "generated: $(ls "$OUT" | tr '\n' ' ')"
