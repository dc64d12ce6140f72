#!/bin/sh
# ExecStartPre of the kubelet in the offline node image. On a cgroup v1 host
# whose container runtime mounts only some hierarchies, systemd in the node
# mounts the rest after kind's entrypoint created the kubelet's cgroups, and
# the kubelet refuses to start: "cgroup [kubelet] has some missing paths:
# /sys/fs/cgroup/hugetlb/kubelet.slice". Create them in every v1 hierarchy.
set -eu
[ -f /sys/fs/cgroup/cgroup.controllers ] && exit 0   # cgroup v2: nothing to do
for d in /sys/fs/cgroup/*/; do
  d="${d%/}"
  [ -L "$d" ] && continue          # cpu -> cpu,cpuacct and the like
  mkdir -p "$d/kubelet" "$d/kubelet.slice" 2>/dev/null || true
done
