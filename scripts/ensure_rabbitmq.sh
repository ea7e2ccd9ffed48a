#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on AMQP_URL: start it when installed but stopped,
# install it with apt-get when missing. Only a loopback broker is ever started here.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"
url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"
[ "$port" = "$host" ] && port=5672

answers() { timeout 2 bash -c "echo > /dev/tcp/$host/$port" 2>/dev/null; }

if answers; then echo "RabbitMQ answers on $host:$port"; exit 0; fi
case "$host" in 127.*|localhost) ;; *) echo "RabbitMQ at $host:$port does not answer and is not local" >&2; exit 1;; esac

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "installing rabbitmq-server with apt-get"
  apt_get update -qq && apt_get install -y -qq rabbitmq-server >/dev/null
fi
echo "starting rabbitmq-server"
(service rabbitmq-server start >/dev/null 2>&1) || (rabbitmq-server -detached >/dev/null 2>&1) || true
for _ in $(seq 1 60); do
  if answers; then echo "RabbitMQ answers on $host:$port"; exit 0; fi
  sleep 1
done
echo "RabbitMQ did not come up on $host:$port" >&2
exit 1
