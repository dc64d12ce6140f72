#!/usr/bin/env bash
# make chart: packages charts/pos-relay into dist/pos-relay-<version>.tgz.
# The version (chart version and appVersion, and so the default image tag) is
# the root package.json's: the one place the release version is set.
#   HELM   helm executable (default: helm on PATH, else the one e2e/kube builds)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$REPO/package.json" | head -1)"
HELM="${HELM:-$(command -v helm || true)}"
if [ -z "$HELM" ]; then
  bash "$REPO/e2e/kube/build-binaries.sh" >&2
  HELM="$(ls -d "${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}"/k8s/*/bin/helm | tail -1)"
fi
mkdir -p "$REPO/dist"
"$HELM" package "$REPO/charts/pos-relay" --version "$VERSION" --app-version "$VERSION" -d "$REPO/dist" >&2
echo "$REPO/dist/pos-relay-$VERSION.tgz"
