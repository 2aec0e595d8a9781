#!/usr/bin/env bash
# Regenerates the plugin protocol's Go code into a temporary directory and
# fails when it differs from the committed files (stale generated code).
#
# Needs protoc 3.21.12 (Debian: protobuf-compiler, libprotobuf-dev) and the
# pinned generators; the generators are installed into a temporary GOBIN
# when they are not on PATH (or ripcord-bin under GOCACHE) at the pinned
# versions. Without protoc it skips, or fails when RIPCORD_REQUIRE_TOOLS=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want_go="v1.36.12"
want_grpc="1.6.2"

if ! command -v protoc >/dev/null 2>&1; then
  if [[ "${RIPCORD_REQUIRE_TOOLS:-}" == "1" ]]; then
    echo "check-generated: protoc missing (Debian packages protobuf-compiler libprotobuf-dev)" >&2
    exit 1
  fi
  echo "check-generated: SKIP, protoc missing (install Debian packages protobuf-compiler libprotobuf-dev)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cache_bin="$(go env GOCACHE)/ripcord-bin"
export PATH="$cache_bin:$PATH"

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
(cd "$here" && protoc -I . -I /usr/include \
  --go_out="$tmp/out" --go_opt=module=github.com/ripcordhq/ripcord/plugins \
  --go-grpc_out="$tmp/out" --go-grpc_opt=module=github.com/ripcordhq/ripcord/plugins \
  ripcord/plugin/v1/provider.proto)

gen="$here/../internal/pluginpb"
status=0
for f in "$tmp"/out/internal/pluginpb/*.go; do
  rel="plugins/internal/pluginpb/$(basename "$f")"
  if ! diff -u "$gen/$(basename "$f")" "$f"; then
    echo "check-generated: $rel is stale; run: go generate ./plugins/proto" >&2
    status=1
  fi
done
for f in "$gen"/*.pb.go; do
  if [[ ! -e "$tmp/out/internal/pluginpb/$(basename "$f")" ]]; then
    echo "check-generated: $(basename "$f") is no longer generated; delete it" >&2
    status=1
  fi
done
[[ $status == 0 ]] && echo "check-generated: generated code is current"
exit $status
