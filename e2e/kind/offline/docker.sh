#!/usr/bin/env bash
# Makes sure a Docker engine answers, for the kind suite.
#
#   e2e/kind/offline/docker.sh start   prints DOCKER_HOST=... on success
#   e2e/kind/offline/docker.sh stop    stops the engine this script started
#
# An engine that already answers (`docker info`) is used as it is. Otherwise,
# as root on Debian, this installs Debian's docker.io when missing and starts
# dockerd with its own config file and data under the cache folder, with
# Docker's iptables/NAT management OFF: it must never change the host's
# FORWARD policy or NAT rules, which the NAT lab (make test-nat) relies on.
# kind works that way: published ports still reach 127.0.0.1 through
# docker-proxy. The engine's default runtime is runc-wrapper.sh (see there).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${POS_RELAY_CACHE:-$HOME/.cache/pos-relay}"
DIR="$CACHE_ROOT/kind/dockerd"
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
DOCKER="${DOCKER:-docker}"

say() { echo "docker.sh: $*" >&2; }
die() { say "$*"; exit 1; }

answers() { DOCKER_HOST="$1" "$DOCKER" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

start() {
  if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then echo "DOCKER_HOST=$DOCKER_HOST"; return; fi
  if answers "unix:///var/run/docker.sock"; then echo "DOCKER_HOST=unix:///var/run/docker.sock"; return; fi
  if answers "unix://$SOCK"; then echo "DOCKER_HOST=unix://$SOCK"; return; fi
  [ "$(id -u)" = 0 ] || die "no Docker engine answers, and only root can start one here: start Docker (or set DOCKER_HOST) and run again"
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "no Docker engine answers and this is not a Debian-like system: install and start Docker Engine, then run again"
    say "installing Debian's docker.io and jq"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io jq >/dev/null \
      || die "apt-get install docker.io jq failed: install Docker Engine by hand, then run again"
  fi
  command -v "$DOCKER" >/dev/null 2>&1 || die "the docker client ($DOCKER) is missing"
  mkdir -p "$DIR"
  install -m 0755 "$HERE/runc-wrapper.sh" "$DIR/runc-wrapper"
  cat > "$DIR/daemon.json" <<JSON
{
  "hosts": ["unix://$SOCK"],
  "pidfile": "$PIDFILE",
  "exec-root": "$DIR/exec",
  "iptables": false,
  "ip6tables": false,
  "ip-forward": false,
  "ip-masq": false,
  "storage-driver": "overlay2",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "runtimes": { "pos-relay-runc": { "path": "$DIR/runc-wrapper" } },
  "default-runtime": "pos-relay-runc",
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "2" }
}
JSON
  say "starting dockerd (config $DIR/daemon.json, log $DIR/dockerd.log)"
  # containerd comes with docker.io; dockerd starts its own when none runs
  nohup dockerd --config-file "$DIR/daemon.json" >"$DIR/dockerd.log" 2>&1 &
  local i
  for i in $(seq 1 60); do
    answers "unix://$SOCK" && { echo "DOCKER_HOST=unix://$SOCK"; return; }
    kill -0 "$!" 2>/dev/null || break
    sleep 1
  done
  say "dockerd did not answer; last lines of its log:"; tail -20 "$DIR/dockerd.log" >&2 || true
  die "no Docker engine could be started"
}

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid; pid="$(cat "$PIDFILE")"
  kill "$pid" 2>/dev/null || return 0
  local i
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
