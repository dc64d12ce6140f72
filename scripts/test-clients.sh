#!/usr/bin/env bash
# make test-clients: the Rust and Go client libraries as apps use them. Builds
# their examples (scripts/build-clients.sh, cached in ~/.cache/pos-relay, the
# libp2p trees shared with the NAT lab's peers), runs each library's own tests
# against the shared protocol vectors (which must be present), then the
# end-to-end tests: Rust and Go examples through a real relay with --auth and a
# real discovery, and JS <-> Go and JS <-> Rust across languages, and the
# ?for= queries each client sends (ranked-discovery, also against an older discovery).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}"
export PATH="$PATH:$HOME/.cargo/bin:/usr/local/go/bin"
export POS_RELAY_REQUIRE_VECTORS=1 POS_RELAY_REQUIRE_CLIENTS=1
bash "$root/scripts/build-clients.sh" >/dev/null
echo "test-clients: cargo test (packages/client-rust)"
(cd "$root/packages/client-rust" && CARGO_TARGET_DIR="$cache/interop/cargo-target" nice -n 10 cargo test --release --locked --quiet)
echo "test-clients: go vet + go test (packages/client-go)"
(cd "$root/packages/client-go" && export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="${GOCACHE:-$cache/interop/go-build}" && go vet ./... && nice -n 10 go test -count=1 ./...)
echo "test-clients: end-to-end"
cd "$root" && node --test --test-concurrency=1 --test-timeout=300000 e2e/test/client-rust.test.ts e2e/test/client-go.test.ts e2e/test/ranked-discovery.test.ts
echo "test-clients: failover (issue 18) with the Rust and Go examples"
# make test runs the JavaScript cells (and these, when the binaries happen to be cached); here they are required
node --test --test-concurrency=1 --test-timeout=300000 --test-name-pattern='failover: the (rust|go) example' e2e/test/failover.test.ts
