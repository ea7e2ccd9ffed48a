#!/usr/bin/env bash
# A Docker engine for the container tests, when none is running: Debian's docker.io, started with
# its data and sockets under a folder of its own, and stopped again afterwards.
#
#   eval "$(scripts/docker_engine.sh start)"   # prints export DOCKER_HOST=...; starts dockerd if no
#                                              # engine answers (installing docker.io when missing)
#   scripts/docker_engine.sh stop              # stops the dockerd that `start` started, nothing else
#
# MLPOWER_DOCKER_DIR (default ~/.cache/mlpower/docker) holds data/ (images and build cache, kept
# between runs so a second run reuses them), run/ (sockets, the pid file) and dockerd.log.
# The engine runs with --iptables=false (no NAT: containers reach each other and published ports,
# builds use --network host), no default bridge (compose makes its own networks, from
# MLPOWER_DOCKER_POOL, default 10.213.0.0/16) and the overlay2 storage driver.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh

dir="${MLPOWER_DOCKER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlpower/docker}"
socket="$dir/run/docker.sock"
pidfile="$dir/run/dockerd.pid"
pool="${MLPOWER_DOCKER_POOL:-10.213.0.0/16}"

answers() { timeout 10 docker ${1:+-H "$1"} info >/dev/null 2>&1; }
ours_alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if [ -z "${MLPOWER_DOCKER_OWN:-}" ] && answers ""; then
    echo "# a Docker engine answers already: ${DOCKER_HOST:-the default socket}" >&2
    [ -n "${DOCKER_HOST:-}" ] && echo "export DOCKER_HOST=$DOCKER_HOST"
    echo "export MLPOWER_DOCKER_STARTED=0"
    return 0
  fi
  if ours_alive && answers "unix://$socket"; then
    echo "# reusing the engine started earlier (pid $(cat "$pidfile"))" >&2
  else
    if ! command -v dockerd >/dev/null 2>&1; then
      echo "# installing docker.io with apt-get" >&2
      apt_get update -qq >&2
      apt_get install -y -qq --no-install-recommends docker.io >/dev/null
    fi
    command -v docker >/dev/null 2>&1 || { echo "docker.io installed no docker client" >&2; exit 1; }
    mkdir -p "$dir/data" "$dir/run"
    rm -f "$pidfile" "$socket"
    echo "# starting dockerd (data in $dir/data, log $dir/dockerd.log)" >&2
    # dockerd outlives this script: it must not inherit its caller's open files (a held
    # `flock /tmp/mlpower-docker.lock` would stay held by dockerd for as long as it runs)
    (
      for fd in /proc/$BASHPID/fd/*; do
        fd="${fd##*/}"; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
      done
      exec setsid dockerd --data-root "$dir/data" --exec-root "$dir/run" --pidfile "$pidfile" \
        -H "unix://$socket" --iptables=false --bridge=none --storage-driver=overlay2 \
        --default-address-pool "base=$pool,size=24" >>"$dir/dockerd.log" 2>&1 </dev/null
    ) &
    for _ in $(seq 1 120); do
      answers "unix://$socket" && break
      if ! kill -0 $! 2>/dev/null; then
        echo "dockerd exited; the end of $dir/dockerd.log:" >&2; tail -20 "$dir/dockerd.log" >&2; exit 1
      fi
      sleep 0.5
    done
    answers "unix://$socket" || { echo "dockerd did not answer within 60 s (see $dir/dockerd.log)" >&2; exit 1; }
  fi
  echo "export DOCKER_HOST=unix://$socket"
  echo "export MLPOWER_DOCKER_STARTED=1"
}

stop() {
  ours_alive || { echo "# no dockerd of ours is running" >&2; return 0; }
  local pid
  pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "# dockerd $pid did not stop within 30 s: killing it" >&2
    kill -KILL "$pid"
  fi
  # dockerd leaves the host network namespace bound here; nothing else of ours stays mounted
  if mountpoint -q "$dir/run/netns/default" 2>/dev/null; then umount "$dir/run/netns/default" || true; fi
  echo "# dockerd stopped" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
