#!/usr/bin/env bash
# Make Debian's Python 3.11 HTML docs available to the real-docs crawl test and the `python-docs`
# crawl, without root and without installing anything system-wide:
#   - /usr/share/doc/python3.11/html present (python3.11-doc installed): nothing to do;
#   - else `apt-get download python3.11-doc` into a temporary directory, `dpkg-deb -x` it, and rename
#     the extracted tree to $HEPHAESTUS_HOME/cache/python3.11-doc (one rename: a killed run never
#     leaves a half tree under that name). The HTML is then under usr/share/doc/python3.11/html.
# When that is impossible (no apt, not root and no package lists, offline) it prints one line saying
# the real-docs crawl test will be skipped and exits 0: a laptop without apt still runs the tests.
# CI sets HEPHAESTUS_REQUIRE_PYDOCS=1, which turns that skip into a test failure.
set -u

SYSTEM_HTML=/usr/share/doc/python3.11/html
HOME_DIR=${HEPHAESTUS_HOME:-$(cd "$(dirname "$0")/.." && pwd)/.hephaestus}
CACHE=$HOME_DIR/cache
DEST=$CACHE/python3.11-doc
MARKER=usr/share/doc/python3.11/html/library/json.html

if [ -f "$SYSTEM_HTML/library/json.html" ]; then
  exit 0
fi
if [ -f "$DEST/$MARKER" ]; then
  exit 0
fi

skip() {
  echo "pydocs: $1 — the real-docs crawl test (test_crawl_debian_python_docs) will be skipped" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine (not Debian?)"
command -v dpkg-deb >/dev/null 2>&1 || skip "no dpkg-deb on this machine"

mkdir -p "$CACHE" || skip "cannot create $CACHE"
# Leftovers of runs killed with SIGKILL (their trap never ran); an hour old, so not a live run's.
find "$CACHE" -maxdepth 1 -name '.python3.11-doc.*' -mmin +60 -exec rm -rf {} + 2>/dev/null
# Staged beside the destination (same filesystem) so the final move is an atomic rename.
TMP=$(mktemp -d "$CACHE/.python3.11-doc.XXXXXX") || skip "cannot create a temporary directory in $CACHE"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP

start=$(date +%s)
download() { (cd "$TMP" && apt-get download -qq python3.11-doc) >"$TMP/apt.log" 2>&1; }

if ! download; then
  if [ "$(id -u)" -eq 0 ]; then
    # Usually empty package lists on a fresh machine: refresh them once and retry.
    echo "pydocs: apt-get download failed; running apt-get update once and retrying" >&2
    apt-get update -qq >>"$TMP/apt.log" 2>&1 && download ||
      skip "apt-get download python3.11-doc failed after apt-get update ($(tail -n 1 "$TMP/apt.log"))"
  else
    skip "apt-get download python3.11-doc failed and not root to run apt-get update ($(tail -n 1 "$TMP/apt.log"))"
  fi
fi

set -- "$TMP"/python3.11-doc_*.deb
[ -f "$1" ] || skip "apt-get download produced no python3.11-doc .deb"
mkdir "$TMP/root" && dpkg-deb -x "$1" "$TMP/root" || skip "dpkg-deb -x $(basename "$1") failed"
# dpkg-deb ignores dependencies; some files may be symlinks to other packages (javascript), which
# does not matter for a crawl of the HTML pages — but the pages themselves must be there.
[ -f "$TMP/root/$MARKER" ] || skip "$(basename "$1") has no $MARKER"

if [ -e "$DEST" ]; then
  # A stale or broken tree from an older layout: move it aside, then drop it.
  mv "$DEST" "$TMP/old" || skip "cannot replace $DEST"
fi
mv "$TMP/root" "$DEST" || skip "cannot rename the extracted tree to $DEST"
echo "pydocs: extracted $(basename "$1") to $DEST in $(($(date +%s) - start)) s" >&2
