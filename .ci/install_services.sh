#!/usr/bin/env bash
# Install the cluster profiles' servers from Debian's packages: `postgresql` and `redis-server`
# (MLflow, Celery and the Dagster libraries come from the project's venv). Nothing is started or
# enabled here: `make services`, `make cluster-demo` and the tests start their own servers on
# 127.0.0.1 with passwords generated at start (orchestration/services.py).
#   - both binaries present: nothing to do;
#   - root with apt-get: `apt-get install` (after one `apt-get update` if the lists are empty/stale);
#   - otherwise: one line saying the cluster tests will be skipped, exit 0 (a laptop without root
#     still runs the other tests). CI sets HEPHAESTUS_REQUIRE_SERVICES=1, which turns that skip
#     into a test failure.
set -u

have() {
  command -v redis-server >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have && exit 0

skip() {
  echo "services: $1 — the cluster tests (tests/orchestration/test_cluster.py) will be skipped" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine (not Debian?)"
[ "$(id -u)" -eq 0 ] || skip "not root: install them with 'sudo apt-get install postgresql redis-server'"

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
start=$(date +%s)
install() {
  # policy-rc.d-style images refuse to start services at install time; that is fine, we start our own
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql redis-server >>"$LOG" 2>&1
}
if ! install; then
  echo "services: apt-get install failed; running apt-get update once and retrying" >&2
  apt-get update -qq >>"$LOG" 2>&1 && install || skip "apt-get install postgresql redis-server failed ($(tail -n 1 "$LOG"))"
fi
have || skip "postgresql/redis-server installed but initdb or redis-server not found"
echo "services: installed postgresql and redis-server in $(($(date +%s) - start)) s" >&2
