#!/usr/bin/env bash
# npm run bench:all: reruns every benchmark, one after the other, each
# rewriting its own section of docs/benchmarks.md (stamped with the commit
# it measured) and the summary. Not in CI: about 1.5 hours on 2 cores, half of
# it the soak (SOAK_MINUTES, default 30; 0 skips it). Run it on a quiet
# machine, with a clean tree, so the stamps name a real commit.
set -uo pipefail
cd "$(dirname "$0")/.."
SOAK_MINUTES="${SOAK_MINUTES:-30}"

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "bench:all: the tree has uncommitted changes; the sections will say <commit>-dirty" >&2
fi
npm run build >/dev/null || exit 1

failed=()
step() {
  local name="$1"; shift
  local t0=$SECONDS
  echo "=== bench:all: $name: $*" >&2
  if "$@"; then echo "=== bench:all: $name done in $((SECONDS - t0)) s" >&2
  else echo "=== bench:all: $name FAILED after $((SECONDS - t0)) s" >&2; failed+=("$name"); fi
}
step run        node bench/src/run.ts
step limits     node bench/src/limits.ts
step relays     node bench/src/relays-compare.ts
step relay-cpu  node bench/src/relay-cpu.ts
step reservations node bench/src/reservations.ts
step auth       node bench/src/auth.ts
step auth-pool  env AUTH_RELAYS=pool node bench/src/auth.ts
step quic       node bench/src/quic-vs-tcp.ts
step workers    node bench/src/workers.ts
step operator   node operator/bench/convergence.ts
step rendezvous node bench/src/rendezvous-sim.ts
step rendezvous-micro node bench/src/rendezvous-micro.ts
step stalled    node bench/src/stalled-circuits.ts
step discovery  node bench/src/discovery-load.ts
step failover   node bench/src/failover.ts
step operator-failover node operator/bench/failover.ts
step kind-tickets node bench/src/kind-tickets.ts
if [ "$SOAK_MINUTES" != 0 ]; then step soak node bench/src/soak.ts --minutes "$SOAK_MINUTES"; fi

if [ ${#failed[@]} -gt 0 ]; then echo "bench:all: failed: ${failed[*]}" >&2; exit 1; fi
echo "bench:all: every section of docs/benchmarks.md rewritten" >&2
