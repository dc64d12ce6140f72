#!/usr/bin/env bash
# runc wrapper, registered as the Docker engine's default runtime by docker.sh.
#
# Some VMs (this project's CI machines among them) run every process with a
# capability bounding set that lacks CAP_SYS_RESOURCE. `docker run
# --privileged` (what kind's nodes are) asks runc for every capability the
# engine knows, and runc fails with "unable to apply caps: operation not
# permitted". This wrapper removes each capability the bounding set of this
# process lacks from the container's config.json (create/run) or --process
# file (exec), then runs the real runc. Where nothing is missing it only execs.
set -euo pipefail
REAL_RUNC="${POS_RELAY_REAL_RUNC:-/usr/sbin/runc}"

# capability names (bit order) whose bit is 0 in CapBnd
missing_caps() {
  local names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
    NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE
    SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL
    SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
  local bnd; bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  local i
  for i in "${!names[@]}"; do
    (( (bnd >> i) & 1 )) || printf 'CAP_%s\n' "${names[$i]}"
  done
}

strip_caps() { # json-file jq-path-prefix
  local file="$1" prefix="$2" missing
  missing="$(missing_caps | jq -R . | jq -sc .)"
  [ "$missing" = "[]" ] && return 0
  local tmp="$file.pos-relay.$$"
  jq --argjson m "$missing" "
    if $prefix.capabilities then
      $prefix.capabilities |= with_entries(.value |= (if type == \"array\" then map(select(. as \$c | \$m | index(\$c) | not)) else . end))
    else . end" "$file" > "$tmp"
  mv -f "$tmp" "$file"
}

cmd="" bundle="" process=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a="${args[$i]}"
  case "$a" in
    create|run|exec) [ -z "$cmd" ] && cmd="$a" ;;
    --bundle|-b) bundle="${args[$((i + 1))]:-}" ;;
    --bundle=*) bundle="${a#--bundle=}" ;;
    --process|-p) process="${args[$((i + 1))]:-}" ;;
    --process=*) process="${a#--process=}" ;;
  esac
done
case "$cmd" in
  create|run) [ -n "$bundle" ] || bundle=.; [ -d "$bundle" ] && [ -f "$bundle/config.json" ] && strip_caps "$bundle/config.json" '.process' ;;
  exec) [ -n "$process" ] && [ -f "$process" ] && strip_caps "$process" '' ;;
esac
exec "$REAL_RUNC" "$@"
