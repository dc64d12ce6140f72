#!/usr/bin/env bash
# make image: builds the pos-relay image (relay, discovery and operator in one)
# from relay-image/Dockerfile with the repository as context.
#
#   relay-image/build.sh [TAG]     default TAG: pos-relay:<version of package.json>
#
# Environment:
#   NODE_IMAGE        the Dockerfile's base (default node:24-bookworm-slim)
#   DOCKER            docker client (default docker)
#   NODE_EXTRA_CA_CERTS  when set (registry traffic through a TLS-intercepting
#                     proxy), this CA bundle is given to the BUILD stage's
#                     `npm ci`; the runtime stage copies only /out, so the
#                     bundle never reaches the final image (e2e/kind checks it)
#
# The context is sent as a tar of the checkout without node_modules, build
# output and .git (the legacy builder reads no relay-image/.dockerignore), and
# the build runs with --network host: it then reaches the npm registry even
# when Docker's own NAT is off (as the kind suite's engine runs).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$REPO/package.json" | head -1)"
TAG="${1:-pos-relay:$VERSION}"
DOCKER="${DOCKER:-docker}"
args=(build --network host -f relay-image/Dockerfile -t "$TAG" --label "org.opencontainers.image.version=$VERSION")
[ -n "${NODE_IMAGE:-}" ] && args+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")

ca_args=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  # added to the context as .build-ca/ca.crt, read by the build stage only
  ca_args=(-C "$(dirname "$NODE_EXTRA_CA_CERTS")" --transform "s,^$(basename "$NODE_EXTRA_CA_CERTS")\$,.build-ca/ca.crt," "$(basename "$NODE_EXTRA_CA_CERTS")")
fi
# without buildx, Docker CLI 23+ still has the legacy builder (which ignores the
# Dockerfile's `# syntax=` line, so it pulls nothing)
if ! "$DOCKER" buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi
echo "building $TAG (context: $REPO)" >&2
tar -C "$REPO" -c \
  --exclude=node_modules --exclude=dist --exclude='*.tsbuildinfo' --exclude=.git --exclude=target \
  --exclude=.cache --exclude=.tools --exclude=coverage --exclude=./docs --exclude=./bench/profiles \
  --exclude=./e2e/interop --exclude=./e2e/kind --exclude=./e2e/kube --exclude=./charts/pos-relay/charts \
  . "${ca_args[@]}" | "$DOCKER" "${args[@]}" -
echo "$TAG"
