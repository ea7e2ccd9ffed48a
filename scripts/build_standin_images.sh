#!/usr/bin/env bash
# Stand-ins for the official images the lab uses, built from Debian packages where Docker Hub
# cannot be reached, under the official names so that deploy/Dockerfile and deploy/compose.yaml
# run unchanged:
#
#   python:3.11-slim            Debian bookworm's Python 3.11 (python, pip, venv), as the base of
#                               deploy/Dockerfile
#   rabbitmq:<tag>-management   Debian's rabbitmq-server with the management and prometheus
#                               plugins; honours RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS,
#                               RABBITMQ_DEFAULT_VHOST and RABBITMQ_ERLANG_COOKIE like the official
#                               image, logs to stdout, runs as the rabbitmq user
#   prom/prometheus:<tag>       Debian's prometheus as /bin/prometheus, user nobody, /prometheus,
#                               the official default command; wget for compose's health check
#
# Grafana has no Debian package: no stand-in (the compose test says so and checks its files).
#
# All three sit on one base made with `debootstrap --variant=minbase bookworm` plus python3 and
# this machine's CA bundle (so https package installs work in builds behind an https proxy).
# Every image carries the label org.mlpower.standin=<what it stands in for>.
#
#   scripts/build_standin_images.sh          # builds what is missing and cannot be pulled
#   scripts/build_standin_images.sh python   # only some of them: python, rabbitmq, prometheus
#   MLPOWER_STANDIN_PULL=0 ...               # do not try Docker Hub first
#   MLPOWER_STANDIN_REBUILD=1 ...            # rebuild stand-ins that already exist
#
# Needs a Docker engine (DOCKER_HOST or the default socket; scripts/docker_engine.sh starts one),
# root for debootstrap, and the Debian mirror of this machine's apt sources. Builds use the host's
# network (`--network host`): they work where dockerd runs with --iptables=false.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh

# The names, from where the lab defines them.
python_image="$(sed -n 's/^ARG PYTHON_BASE=//p' deploy/Dockerfile)"
rabbitmq_image="$(sed -n 's/.*\${RABBITMQ_IMAGE:-\([^}]*\)}.*/\1/p' deploy/compose.yaml | head -1)"
prometheus_image="$(sed -n 's/.*\${PROMETHEUS_IMAGE:-\([^}]*\)}.*/\1/p' deploy/compose.yaml | head -1)"
base_image="mlpower-standin/debian:bookworm"
suite=bookworm

wanted=" ${*:-python rabbitmq prometheus} "
for name in $wanted; do
  case "$name" in python|rabbitmq|prometheus) ;; *) echo "unknown image $name (python, rabbitmq, prometheus)" >&2; exit 2;; esac
done
want() { [[ "$wanted" == *" $1 "* ]]; }

log() { echo "standin: $*" >&2; }

is_standin() { [ -n "$(docker image inspect --format '{{ index .Config.Labels "org.mlpower.standin" }}' "$1" 2>/dev/null)" ]; }

# 0: the image is there (pulled now or before) and is not a stand-in to rebuild; 1: build one
have_image() {
  local image="$1"
  if docker image inspect "$image" >/dev/null 2>&1; then
    if [ "${MLPOWER_STANDIN_REBUILD:-0}" = 1 ] && is_standin "$image"; then return 1; fi
    log "$image: present$(is_standin "$image" && echo ' (stand-in)')"; return 0
  fi
  if [ "${MLPOWER_STANDIN_PULL:-1}" = 1 ] && timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
    log "$image: pulled"; return 0
  fi
  return 1
}

apt_mirror() {
  # the first Debian mirror of the host's apt sources (deb822 or one-line format)
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)"
  [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                          | awk '{print $2}' | grep -v security | head -1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  # several runs of this script at once (one image each) make the base once
  exec 9>"${TMPDIR:-/tmp}/mlpower-standin-base.lock"
  flock 9
  if docker image inspect "$base_image" >/dev/null 2>&1 && [ "${MLPOWER_STANDIN_REBUILD:-0}" != 1 ]; then
    flock -u 9
    return 0
  fi
  command -v debootstrap >/dev/null || { log "installing debootstrap"; apt_get install -y -qq debootstrap >/dev/null; }
  local root mirror
  root="$(mktemp -d)"
  mirror="$(apt_mirror)"
  log "debootstrap --variant=minbase $suite from $mirror"
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" RETURN
  debootstrap --variant=minbase --include=ca-certificates,python3 "$suite" "$root/rootfs" "$mirror" \
    > "$root/debootstrap.log" 2>&1 || { tail -20 "$root/debootstrap.log" >&2; return 1; }
  # this machine's CAs: the bundle as it is, and the local ones for a later update-ca-certificates
  cp /etc/ssl/certs/ca-certificates.crt "$root/rootfs/etc/ssl/certs/ca-certificates.crt"
  cp -a /usr/local/share/ca-certificates/. "$root/rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  # as Debian's slim images: no documentation, manuals or translations, empty package caches
  cat > "$root/rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  find "$root/rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$root"/rootfs/usr/share/{man,info,locale}/* "$root"/rootfs/var/cache/apt/archives/*.deb \
         "$root"/rootfs/var/lib/apt/lists/*
  echo 'APT::Install-Recommends "false";' > "$root/rootfs/etc/apt/apt.conf.d/01-no-recommends"
  # no downloaded packages or package caches left in image layers
  cat > "$root/rootfs/etc/apt/apt.conf.d/02-no-caches" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  tar -C "$root/rootfs" --numeric-owner -c . \
    | docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
        --change "LABEL org.mlpower.standin=debian:$suite-slim" - "$base_image" >/dev/null
  log "$base_image: built ($(docker image inspect --format '{{.Size}}' "$base_image" | awk '{printf "%d MB", $1/1e6}'))"
  flock -u 9
}

build() {  # build <image> <what it stands in for>: Dockerfile on stdin, context the named folder
  local image="$1" context="$2"
  log "$image: building a stand-in"
  docker build --network host -q -t "$image" --label "org.mlpower.standin=$image" -f - "$context" >/dev/null
  log "$image: built ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
}

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT

if want python && ! have_image "$python_image"; then
  build_base
  build "$python_image" "$context" <<DOCKERFILE
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python-is-python3 \\
    && rm -rf /var/lib/apt/lists/* \\
    && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
# the official image's variables; pip and Python's ssl module use the bundle above
ENV PYTHON_VERSION=3.11 PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
DOCKERFILE
fi

if want rabbitmq && ! have_image "$rabbitmq_image"; then
  build_base
  cat > "$context/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# The official image's variables, as configuration, then the broker as the rabbitmq user.
set -eu
conf=/etc/rabbitmq/conf.d/10-defaults.conf
mkdir -p /etc/rabbitmq/conf.d
{
  echo "loopback_users.guest = false"
  echo "listeners.tcp.default = 5672"
  echo "management.tcp.port = 15672"
  [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
  [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
  [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ] && echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
  true
} > "$conf"
chmod 640 "$conf"; chown root:rabbitmq "$conf"
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
  printf '%s' "$RABBITMQ_ERLANG_COOKIE" > /var/lib/rabbitmq/.erlang.cookie
  chmod 600 /var/lib/rabbitmq/.erlang.cookie
fi
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
if [ "${1:-}" = rabbitmq-server ]; then
  shift
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq \
    /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
ENTRY
  chmod 755 "$context/docker-entrypoint.sh"
  build "$rabbitmq_image" "$context" <<DOCKERFILE
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends rabbitmq-server \\
    && rm -rf /var/lib/apt/lists/* \\
    && rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 4369 5671 5672 15671 15672 15691 15692 25672
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
DOCKERFILE
fi

if want prometheus && ! have_image "$prometheus_image"; then
  build_base
  build "$prometheus_image" "$context" <<DOCKERFILE
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends prometheus wget \\
    && rm -rf /var/lib/apt/lists/* \\
    && mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
fi
