#!/usr/bin/env bash
# Builds the Go client's example (packages/client-go/cmd/file-transfer) into a
# cache OUTSIDE the repository, keyed by a hash of the module's non-test
# sources + go.mod/go.sum + the Go version, like scripts/build-clients.sh:
#
#   ${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}/clients/go-file-transfer-<hash>/go-file-transfer
#
# and reuses what is already built. Prints the binary's path as its last line.
# Go's build cache is the interop one (same go-libp2p as e2e/interop/go-peer),
# so the libp2p tree compiles once. Needs go >= 1.26 and the Go module proxy.
#
#   scripts/build-client-go.sh                 # build (or reuse) go-file-transfer
#   scripts/build-client-go.sh --cached-only   # print the path only if that exact build is cached (exit 1 otherwise)
#
# go_build is written to be pasted into scripts/build-clients.sh under `# ---- go`
# (it uses that script's root, cache, cached_only and nice_cmd):
#
#     go-file-transfer) go_build "$name" ;;
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}"
mkdir -p "$cache/clients"
export PATH="$PATH:/usr/local/go/bin"
nice_cmd=(nice -n 10)

# ---- go_build (for scripts/build-clients.sh)
go_key_of() { # hash of what defines the binary (tests and testdata excluded) and the Go version
  local dir="$1"
  (cd "$dir" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -not -name '*_test.go' -not -path './testdata/*' \
      | LC_ALL=C sort | xargs sha256sum; go version 2>/dev/null) | sha256sum | cut -c1-16
}

go_build() { # go_build go-file-transfer: prints the binary's path
  local name="$1" dir="$root/packages/client-go" out bin start
  command -v go >/dev/null || { echo "build-clients: go not found (go >= 1.26)" >&2; return 1; }
  out="$cache/clients/$name-$(go_key_of "$dir")"
  bin="$out/$name"
  if [ -x "$bin" ]; then
    echo "build-clients: $name cached at $bin" >&2
  elif [ "$cached_only" = 1 ]; then
    echo "build-clients: $name is not built (run scripts/build-clients.sh $name)" >&2
    return 1
  else
    start=$(date +%s)
    echo "build-clients: building $name ..." >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    (cd "$dir" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="${GOCACHE:-$cache/interop/go-build}" \
      "${nice_cmd[@]}" go build -trimpath -o "$out.tmp/$name" ./cmd/file-transfer)
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "build-clients: built $name in $(( $(date +%s) - start )) s" >&2
  fi
  echo "$bin"
}
# ---- end go_build

cached_only=0
for arg in "$@"; do
  case "$arg" in
    --cached-only) cached_only=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build-client-go: unknown argument $arg" >&2; exit 2 ;;
  esac
done
go_build go-file-transfer
