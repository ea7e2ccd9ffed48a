#!/usr/bin/env bash
# Regenerate deploy/requirements.txt: every runtime dependency of pyproject.toml (and the build
# backend the image installs the project with), pinned to one version with the SHA-256 of every
# file PyPI serves for it. The image installs exactly this with `pip install --require-hashes`.
#
#   scripts/lock_requirements.sh            # after changing [project] dependencies
#
# Reproducible: a throw-away virtualenv with a pinned pip-tools, PyPI only (no pip configuration,
# local wheel folders or extra indexes of this machine), Python 3.11 as in the image. The result
# changes only when PyPI publishes newer versions; review the diff like code.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "the image runs Python 3.11: lock with it"'

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# a clean pip: none of this machine's pip configuration or PIP_* variables
clean_env=(env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT -u PIP_NO_INDEX
           PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1)
# a CA bundle of the machine (an https proxy's CA, for instance) is kept
cert=()
for bundle in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$bundle" ] && [ -f "$bundle" ]; then cert=(--cert "$bundle"); break; fi
done

"${clean_env[@]}" "$PYTHON" -m venv "$work/venv"
"${clean_env[@]}" "$work/venv/bin/pip" install -q "${cert[@]}" --index-url https://pypi.org/simple \
  "pip==24.0" "pip-tools==7.4.1"
"${clean_env[@]}" CUSTOM_COMPILE_COMMAND="scripts/lock_requirements.sh" \
  "$work/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
  --index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  ${cert:+--pip-args "${cert[*]}"} --output-file deploy/requirements.txt pyproject.toml
echo "deploy/requirements.txt: $(grep -c '==' deploy/requirements.txt) packages pinned with hashes"
