#!/bin/sh
# Writes the node's CNI config from flannel's subnet.env (the flannel image's
# second container; see flannel.yaml): ptp + host-local on this node's pod
# subnet, and portmap for hostPort. Rewrites it when the subnet changes.
set -eu
ENV_FILE=/run/flannel/subnet.env
OUT=/etc/cni/net.d/10-pos-relay-flannel.conflist
last=""
while :; do
  if [ -f "$ENV_FILE" ]; then
    . "$ENV_FILE"
    # FLANNEL_SUBNET is the node's gateway address with its prefix (10.244.1.1/24)
    subnet="${FLANNEL_SUBNET%.*/*}.0/${FLANNEL_SUBNET#*/}"
    if [ "$subnet" != "$last" ]; then
      cat > "$OUT.tmp" <<CONF
{
  "cniVersion": "0.4.0",
  "name": "flannel-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": ${FLANNEL_MTU:-1500},
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [ { "dst": "0.0.0.0/0" } ],
        "ranges": [ [ { "subnet": "$subnet" } ] ]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CONF
      mv -f "$OUT.tmp" "$OUT"
      echo "wrote $OUT for $subnet"
      last="$subnet"
    fi
  fi
  sleep 5
done
