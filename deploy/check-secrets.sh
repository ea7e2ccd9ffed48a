#!/bin/sh
# The lab's first container: it refuses to let the lab start while a secret in deploy/.env is
# empty or still a placeholder, and says which one and how to make a real one. Every other
# service waits for it (directly or through RabbitMQ), so nothing listens with a guessable secret.
# Secret values are never printed.
set -u
status=0
generate='python3 -c "import secrets; print(secrets.token_urlsafe(32))"'

check() {  # check NAME VALUE
  lowered="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')"
  case "$lowered" in
    "") problem="is empty" ;;
    change-me*|changeme*|change_me*|guest|admin|password|secret|token|mlpower) problem="is a placeholder" ;;
    *) return 0 ;;
  esac
  echo "check-secrets: refused: $1 in deploy/.env $problem; generate one with: $generate" >&2
  status=1
}

secrets_dir="${SECRETS_DIR:-/run/secrets}"  # another folder only for testing the script
read_secret() { if [ -r "$1" ]; then cat "$1"; fi; }

# The broker's password is no longer in any container's environment: mlpower.compose_secrets refuses
# an empty or placeholder one before the broker's definitions exist. Checked here only when given.
if [ -n "${RABBITMQ_PASSWORD+set}" ]; then check RABBITMQ_PASSWORD "$RABBITMQ_PASSWORD"; fi
check MLPOWER_API_TOKEN "$(read_secret "$secrets_dir/mlpower_api_token")"
check GRAFANA_ADMIN_PASSWORD "$(read_secret "$secrets_dir/grafana_admin_password")"
[ "$status" -eq 0 ] && echo "check-secrets: no empty or placeholder secret"
exit "$status"
