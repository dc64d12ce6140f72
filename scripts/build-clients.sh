#!/usr/bin/env bash
# Builds the client libraries' example binaries (test and demo use) into a
# cache OUTSIDE the repository, keyed by a hash of each one's sources + lock
# + toolchain version, like e2e/interop/build.sh:
#
#   ${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}/clients/<name>-<hash>/<name>
#
# and reuses what is already built. Prints each binary's path on its own line,
# in the order asked. CARGO_TARGET_DIR is the interop cache's, so the libp2p
# tree (same version, features and lock as e2e/interop/rust-peer) compiles once.
#
#   scripts/build-clients.sh                       # every client
#   scripts/build-clients.sh rust-file-transfer    # one (or go-file-transfer)
#   scripts/build-clients.sh --cached-only rust-file-transfer
#       prints the path only if that exact build is cached (exit 1 otherwise); never builds
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}"
mkdir -p "$cache/clients"
# rustup's and the official Go tarball's default locations, for shells (CI) that lack them on PATH
export PATH="$PATH:$HOME/.cargo/bin:/usr/local/go/bin"
export CARGO_TARGET_DIR="$cache/interop/cargo-target"
nice_cmd=(nice -n 10)

cached_only=0
names=()
for arg in "$@"; do
  case "$arg" in
    --cached-only) cached_only=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) names+=("$arg") ;;
  esac
done
[ ${#names[@]} -eq 0 ] && names=(rust-file-transfer go-file-transfer)

# cached_build NAME KEY BUILDER: prints the path of NAME's binary in
# $cache/clients/NAME-KEY, first running `BUILDER <path>` to build it there
# unless that exact build is cached; with --cached-only it never builds.
# Builds go to a .tmp folder first so an interrupted one is never taken as cached.
cached_build() {
  local name="$1" key="$2" builder="$3" out bin start
  out="$cache/clients/$name-$key"
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
    # explicit: set -e does not apply inside a function called from `||`
    "$builder" "$out.tmp/$name" || return 1
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "build-clients: built $name in $(( $(date +%s) - start )) s" >&2
  fi
  echo "$bin"
}

rust_key() { # hash of the files that define the build, and the toolchain
  local dir="$1"
  (cd "$dir" && find . -type f \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' -o -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) \
      -not -path './target/*' -not -path './tests/*' | LC_ALL=C sort | xargs sha256sum; \
   { command -v rustc >/dev/null && rustc --version; command -v go >/dev/null && go version; } 2>/dev/null) | sha256sum | cut -c1-16
}

rust_build() { # rust_build <binary path>
  command -v cargo >/dev/null || { echo "build-clients: cargo not found (install rustup/cargo, rust >= 1.88)" >&2; return 1; }
  (cd "$root/packages/client-rust" && "${nice_cmd[@]}" cargo build --release --locked --quiet --example file-transfer) &&
    cp "$CARGO_TARGET_DIR/release/examples/file-transfer" "$1"
}

go_key() { # hash of what defines the binary (tests and testdata excluded) and the Go version
  local dir="$1"
  (cd "$dir" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -not -name '*_test.go' -not -path './testdata/*' \
      | LC_ALL=C sort | xargs sha256sum; go version 2>/dev/null) | sha256sum | cut -c1-16
}

go_build() { # go_build <binary path>
  (cd "$root/packages/client-go" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="${GOCACHE:-$cache/interop/go-build}" \
    "${nice_cmd[@]}" go build -trimpath -o "$1" ./cmd/file-transfer)
}

for name in "${names[@]}"; do
  case "$name" in
    rust-file-transfer) cached_build "$name" "$(rust_key "$root/packages/client-rust")" rust_build || exit 1 ;;
    go-file-transfer)
      # the key includes the Go version: no key without go
      command -v go >/dev/null || { echo "build-clients: go not found (go >= 1.26)" >&2; exit 1; }
      cached_build "$name" "$(go_key "$root/packages/client-go")" go_build || exit 1 ;;
    *) echo "build-clients: unknown client $name" >&2; exit 2 ;;
  esac
done
