#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/ui: Playwright drives the system binary; Playwright's
# own browser download is never used, these machines reach only the package registries):
#   - chromium (or chromium-browser) already on PATH: nothing to do;
#   - root with apt-get: `apt-get install -y chromium` (after one `apt-get update` when the package
#     lists are empty or stale);
#   - otherwise: one line saying the browser tests will be skipped, exit 0 — a laptop without apt or
#     root still runs the rest. CI sets HEPHAESTUS_REQUIRE_BROWSER=1, which turns that skip into a
#     test failure (like HEPHAESTUS_REQUIRE_PYDOCS for `make pydocs`).
set -u

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi

skip() {
  echo "browser: $1 — the browser tests (tests/ui) will be skipped" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine (not Debian?); install chromium yourself"
[ "$(id -u)" -eq 0 ] || skip "not root: run \`sudo apt-get install -y chromium\` once"

start=$(date +%s)
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >>"$LOG" 2>&1; }
if ! install; then
  echo "browser: apt-get install chromium failed; running apt-get update once and retrying" >&2
  apt-get update -qq >>"$LOG" 2>&1 && install || skip "apt-get install chromium failed ($(tail -n 1 "$LOG"))"
fi
command -v chromium >/dev/null 2>&1 || skip "chromium installed but not on PATH"
echo "browser: installed $(chromium --version 2>/dev/null | head -n 1) in $(($(date +%s) - start)) s" >&2
