#!/usr/bin/env bash
# Builds the NAT lab's rust and go peers and relays (test-only binaries) into a
# cache OUTSIDE the repository, keyed by a hash of each one's sources + lock:
#
#   ${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}/interop/<name>-<hash>/<name>
#
# and reuses what is already built. rust-peer and go-peer are built from our
# client libraries (packages/client-rust, packages/client-go: their ticket
# modules), whose sources are part of their keys. Prints one JSON line mapping each name to
# its binary. CARGO_TARGET_DIR (shared by the two rust projects, so the
# libp2p dependency tree compiles once) and Go's build cache live in the cache
# too. Needs cargo (crates.io, rust >= 1.88) and go >= 1.26 (the Go module proxy).
#
#   e2e/interop/build.sh            # all four
#   e2e/interop/build.sh rust-peer  # just one
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}/interop"
mkdir -p "$cache"
# rustup's and the official Go tarball's default locations, for shells (CI) that lack them on PATH
export PATH="$PATH:$HOME/.cargo/bin:/usr/local/go/bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export CARGO_TARGET_DIR="$cache/cargo-target"
export GOCACHE="${GOCACHE:-$cache/go-build}"
nice_cmd=(nice -n 10)

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(rust-peer rust-relay go-peer go-relay)

# the client library a peer is built from (Cargo path dependency / go.mod
# replace directive): its sources are part of the peer's key
lib_of() {
  case "$1" in
    rust-peer) echo "$root/packages/client-rust" ;;
    go-peer) echo "$root/packages/client-go" ;;
  esac
}

sources() { # sha256sum of the build-defining files under $1 (tests excluded)
  (cd "$1" && find . -type f \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' -o -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) \
      -not -path './target/*' -not -path './tests/*' -not -path './testdata/*' -not -name '*_test.go' | LC_ALL=C sort | xargs sha256sum)
}

key_of() { # hash of the files that define the build, and the toolchain
  local dir="$1" lib="$2"
  (sources "$dir"; [ -z "$lib" ] || sources "$lib"; \
   { command -v rustc >/dev/null && rustc --version; command -v go >/dev/null && go version; } 2>/dev/null) | sha256sum | cut -c1-16
}

json="{"
sep=""
for name in "${names[@]}"; do
  dir="$here/$name"
  [ -d "$dir" ] || { echo "build.sh: no such project $name" >&2; exit 2; }
  out="$cache/$name-$(key_of "$dir" "$(lib_of "$name")")"
  bin="$out/$name"
  if [ -x "$bin" ]; then
    echo "build.sh: $name cached at $bin" >&2
  else
    start=$(date +%s)
    echo "build.sh: building $name ..." >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    case "$name" in
      rust-*)
        command -v cargo >/dev/null || { echo "build.sh: cargo not found (install rustup/cargo)" >&2; exit 1; }
        (cd "$dir" && "${nice_cmd[@]}" cargo build --release --locked --quiet)
        cp "$CARGO_TARGET_DIR/release/$name" "$out.tmp/$name" ;;
      go-*)
        command -v go >/dev/null || { echo "build.sh: go not found" >&2; exit 1; }
        (cd "$dir" && "${nice_cmd[@]}" go build -trimpath -o "$out.tmp/$name" .) ;;
    esac
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "build.sh: built $name in $(( $(date +%s) - start )) s" >&2
  fi
  json="$json$sep\"$name\":\"$bin\""
  sep=","
done
echo "$json}"
