#!/usr/bin/env bash
# make e2e-kind-down: deletes the cluster `E2E_KIND_KEEP=1 make e2e-kind` left
# running, and stops the Docker engine the suite started (if it started one).
set -euo pipefail
CLUSTER="${POS_RELAY_KIND_CLUSTER:-pos-relay-e2e}"
CACHE="${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}/kind"
KIND="${KIND:-$([ -x "$CACHE/bin/kind" ] && echo "$CACHE/bin/kind" || echo kind)}"
# The engine the suite starts keeps its containers under the cache folder: after a reboot (or a
# run that was killed) it is down but a cluster's node containers are still there, and come back
# when it starts. So start it to look, and stop it again at the end.
if [ -z "${DOCKER_HOST:-}" ] && [ -d "$CACHE/dockerd" ]; then
  export "$(bash "$(dirname "$0")/offline/docker.sh" start)"
fi
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  "$KIND" delete cluster --name "$CLUSTER"
else
  echo "no kind cluster named $CLUSTER"
fi
rm -f "$CACHE/$CLUSTER.kubeconfig" "$CACHE/$CLUSTER.json"
bash "$(dirname "$0")/offline/docker.sh" stop
