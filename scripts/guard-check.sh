#!/usr/bin/env bash
# Do the tests catch what they are named for? Guard by guard: run the test
# on the clean tree (it must pass), apply a patch from scripts/guards/ that
# removes the guard it is named for (or swaps in upstream's pipe()), rebuild,
# run the test again (it must FAIL), and restore the tree.
#
#   scripts/guard-check.sh            every guard
#   scripts/guard-check.sh flood      the guards whose name contains "flood"
#   GUARD_CHECK_NO_BASELINE=1 ...     skip the clean-tree runs
#
# Not part of CI (slow: a few minutes). Needs a clean work tree: it restores
# the patched files with `git checkout`, also on Ctrl-C or an error, and
# rebuilds. The kube dashboards guard needs the cached Kubernetes binaries and
# Debian's prometheus, as `npm run test:kube` does.
set -uo pipefail
cd "$(git rev-parse --show-toplevel)"

if ! git diff --quiet || ! git diff --cached --quiet; then
  echo "guard-check: the work tree has changes; commit or stash them first (it restores patched files with git checkout)" >&2
  exit 2
fi

# name | patch | test file | test name pattern (empty: the whole file)
GUARDS=(
  "backpressure (relay)|backpressure-upstream-pipe.patch|relay-image/test/relay.test.ts|holds the sender back while the destination reads nothing"
  "backpressure (e2e, relay process)|backpressure-upstream-pipe.patch|e2e/test/relay-e2e.test.ts|a destination that reads nothing holds the sender back"
  "backpressure half-close (relay)|backpressure-half-close-early.patch|relay-image/test/relay.test.ts|holds the sender back while the destination reads nothing"
  "backpressure half-close (e2e, relay process)|backpressure-half-close-early.patch|e2e/test/relay-e2e.test.ts|a destination that reads nothing holds the sender back"
  "QUIC stall bound|quic-read-backpressure.patch|relay-image/test/quic.test.ts|a destination that reads nothing holds a QUIC sender back"
  "malformed traffic|malformed-no-connection-failed.patch|e2e/test/malformed.test.ts|"
  "HOP refusals closed|hop-refusal-left-open.patch|relay-image/test/hop-refusals.test.ts|"
  "flood eviction|flood-no-eviction.patch|e2e/test/flood.test.ts|"
  "--help flags|help-flag-without-text.patch|packages/cli/test/cli.test.ts|^run --help"
  "dashboards operator half|dashboards-no-operator.patch|e2e/kube/test/dashboards.test.ts|"
  "log redaction|redaction-config-keypair.patch|packages/shared/test/logger-redaction.test.ts|"
)

restore () {
  local changed
  changed=$(git diff --name-only)
  if [ -n "$changed" ]; then
    # shellcheck disable=SC2086
    git checkout -- $changed
    npx tsc -b >/dev/null 2>&1 || echo "guard-check: rebuild after restoring failed; run npx tsc -b" >&2
  fi
}
child=''
trap 'restore' EXIT
# the test runs in the background and is waited for, so that a signal ends the
# wait at once (bash defers traps while a foreground child runs, and node's
# test runner exits normally on SIGINT)
trap 'echo; echo "guard-check: interrupted, restoring the tree" >&2; [ -n "$child" ] && kill "$child" 2>/dev/null; exit 130' INT TERM

# runs one test; prints its verdict lines; returns node's exit code
run_test () {
  local file=$1 pattern=$2 log
  log=$(mktemp)
  local args=(--test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec)
  [ -n "$pattern" ] && args+=(--test-name-pattern="$pattern")
  npx node "${args[@]}" "$file" >"$log" 2>&1 &
  child=$!
  wait "$child"
  local rc=$?
  child=''
  # the counts, the failed tests and their first messages, not the stack traces
  echo "    | $(grep -E '^ℹ (pass|fail) ' "$log" | tr '\n' ' ')"
  grep -E '^\s*✖|Error|^# ' "$log" | grep -vE '^\s+at |failing tests' | sed 's/^\s*//' | awk '!seen[$0]++' | head -6 | cut -c1-240 | sed 's/^/    | /'
  rm -f "$log"
  return $rc
}

filter=${1:-}
failures=0
summary=()
for guard in "${GUARDS[@]}"; do
  IFS='|' read -r name patch file pattern <<<"$guard"
  [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && continue
  echo "== $name: $file${pattern:+ -- \"$pattern\"}"
  if [ -z "${GUARD_CHECK_NO_BASELINE:-}" ]; then
    npx tsc -b || exit 1
    echo "  with the guard (must pass):"
    if ! run_test "$file" "$pattern"; then
      echo "  !! fails with its guard in place"
      summary+=("FAILS ON THE CLEAN TREE  $name")
      failures=$((failures + 1))
      continue
    fi
  fi
  git apply "scripts/guards/$patch" || { echo "  !! $patch does not apply"; failures=$((failures + 1)); summary+=("PATCH DOES NOT APPLY     $name"); continue; }
  echo "  without it ($patch; must fail):"
  if npx tsc -b; then
    if run_test "$file" "$pattern"; then
      echo "  !! PASSED without its guard"
      summary+=("PASSES WITHOUT ITS GUARD $name ($patch)")
      failures=$((failures + 1))
    else
      summary+=("caught                   $name ($patch)")
    fi
  else
    echo "  !! the patched tree does not build"
    summary+=("PATCHED TREE DOES NOT BUILD $name")
    failures=$((failures + 1))
  fi
  restore
done

echo
echo "== summary"
printf '  %s\n' "${summary[@]}"
exit $((failures > 0 ? 1 : 0))
