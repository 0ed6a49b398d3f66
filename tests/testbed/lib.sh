# Shared by testbed-up and testbed-down (sourced, not run).
# shellcheck shell=bash

TESTBED_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "testbed: $*" >&2
  exit 1
}

# The state dir, absolute and outside every tree a host overlays or hides.
testbed_state_dir() {
  local s=${HPCUP_TESTBED_STATE:-/srv/hpcup-testbed}
  case "$s" in
    /*) ;;
    *) die "HPCUP_TESTBED_STATE must be an absolute path, got '$s'" ;;
  esac
  s=${s%/}
  case "$s/" in
    /etc/* | /var/* | /root/* | /opt/* | /run/* | /tmp/* | /dev/* | /proc/* | /sys/* | /usr/* | /)
      die "HPCUP_TESTBED_STATE=$s is inside a tree the hosts overlay or hide; use e.g. /srv/..." ;;
  esac
  printf '%s\n' "$s"
}

# Is $1 a live process whose network namespace is the named one ($2)? Guards every kill
# against PID reuse: the bed only ever signals the PIDs it started.
pid_in_netns() {
  local pid=$1 ns=$2 a b
  [ -n "$pid" ] && [ -e "/proc/$pid" ] && [ -e "/run/netns/$ns" ] || return 1
  a=$(stat -L -c '%d:%i' "/proc/$pid/ns/net" 2>/dev/null) || return 1
  b=$(stat -L -c '%d:%i' "/run/netns/$ns" 2>/dev/null) || return 1
  [ "$a" = "$b" ]
}

# Kill a host's PID 1 (which takes its whole PID namespace with it) and wait until it is gone.
kill_host_pid1() {
  local pid=$1 ns=$2 i
  pid_in_netns "$pid" "$ns" || return 0
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    [ -e "/proc/$pid" ] || return 0
    # a zombie is gone as far as the host is concerned; its parent (unshare) reaps it
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "testbed: warning: pid $pid ($ns) still exists after SIGKILL" >&2
}

netns_exists() {
  [ -e "/run/netns/$1" ]
}
