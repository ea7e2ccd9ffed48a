# shellcheck shell=bash
# apt_get: apt-get that waits while another apt-get or dpkg holds the package manager's locks,
# instead of failing at once ("Could not get lock /var/lib/dpkg/lock-frontend").
#
#   . scripts/lib/apt.sh; apt_get update -qq; apt_get install -y -qq rabbitmq-server
#
# dpkg's locks are taken by apt-get itself with DPkg::Lock::Timeout (it waits and says so), but
# `apt-get update` takes the lists lock without any wait: so failures that name a lock are also
# retried every APT_LOCK_RETRY_S seconds, until APT_LOCK_WAIT_S (default 15 min) have passed.
# Any other failure is returned at once, with apt-get's own message.

APT_LOCK_WAIT_S="${APT_LOCK_WAIT_S:-900}"
APT_LOCK_RETRY_S="${APT_LOCK_RETRY_S:-5}"

apt_get() {
  local -  # the options below stay inside this function
  set +e +o pipefail
  local deadline=$((SECONDS + APT_LOCK_WAIT_S)) errors rc remaining
  errors="$(mktemp)"
  while :; do
    remaining=$((deadline - SECONDS))
    [ "$remaining" -gt 0 ] || remaining=1
    # stderr goes to the terminal as it comes, and to a file to look for a lock message in
    { DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$remaining" "$@" 2>&1 1>&3 3>&- \
        | tee "$errors" >&2; rc=${PIPESTATUS[0]}; } 3>&1
    if [ "$rc" -eq 0 ]; then
      rm -f "$errors"; return 0
    fi
    if grep -qE 'Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock' "$errors" \
        && [ "$SECONDS" -lt "$deadline" ]; then
      echo "apt-get: another package manager holds a lock; waiting ($((deadline - SECONDS)) s left)" >&2
      sleep "$APT_LOCK_RETRY_S"
      continue
    fi
    rm -f "$errors"; return "$rc"
  done
}
