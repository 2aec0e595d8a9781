#!/usr/bin/env bash
# Regenerates the client API's Go code into a temporary directory and fails
# when it differs from the committed files (stale generated code).
#
# Needs protoc 3.21.12 (Debian: protobuf-compiler) and the pinned
# generators; they are installed into a temporary GOBIN when they are not
# on PATH (or ripcord-bin under GOCACHE) at the pinned versions. Without
# protoc it skips, or fails when RIPCORD_REQUIRE_TOOLS=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want_go="v1.36.12"
want_grpc="1.6.2"

if ! command -v protoc >/dev/null 2>&1; then
  if [[ "${RIPCORD_REQUIRE_TOOLS:-}" == "1" ]]; then
    echo "check-generated: protoc missing (Debian package protobuf-compiler)" >&2
    exit 1
  fi
  echo "check-generated: SKIP, protoc missing (install Debian package protobuf-compiler)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

export PATH="$(go env GOCACHE)/ripcord-bin:$PATH"
gen_ok() {
  command -v protoc-gen-go >/dev/null 2>&1 && command -v protoc-gen-go-grpc >/dev/null 2>&1 &&
    [[ "$(protoc-gen-go --version 2>/dev/null)" == *"$want_go"* ]] &&
    [[ "$(protoc-gen-go-grpc --version 2>/dev/null)" == *"$want_grpc"* ]]
}
if ! gen_ok; then
  mkdir -p "$tmp/bin"
  GOBIN="$tmp/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$want_go"
  GOBIN="$tmp/bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v$want_grpc"
  export PATH="$tmp/bin:$PATH"
fi

mkdir -p "$tmp/out"
(cd "$here" && protoc -I . \
  --go_out="$tmp/out" --go_opt=paths=source_relative \
  --go-grpc_out="$tmp/out" --go-grpc_opt=paths=source_relative \
  v1/api.proto)

status=0
for f in "$tmp"/out/v1/*.go; do
  rel="v1/$(basename "$f")"
  if ! diff -u "$here/$rel" "$f"; then
    echo "check-generated: cmd/ripcord/internal/api/$rel is stale; run: go generate ./cmd/ripcord/internal/api" >&2
    status=1
  fi
done
for f in "$here"/v1/*.pb.go; do
  if [[ ! -e "$tmp/out/v1/$(basename "$f")" ]]; then
    echo "check-generated: $(basename "$f") is no longer generated; delete it" >&2
    status=1
  fi
done
[[ $status == 0 ]] && echo "check-generated: client API code is current"
exit $status
