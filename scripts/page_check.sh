#!/usr/bin/env bash
# Open HTML pages (report.html, show.html) in headless Chromium: a screenshot of each (PAGE.png beside
# it, or in $SHOTS), no console errors, and the embedded images / entity marks present in the DOM.
#   scripts/page_check.sh OUT/report.html OUT/show.html
# Installs the Debian package `chromium` with apt-get when it is missing. Exit 0 only when every
# page passes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 PAGE.html ..." >&2; exit 2; }
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
  echo "chromium missing: installing it with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  CHROME=$(command -v chromium)
fi
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
status=0
for page in "$@"; do
  abs=$(realpath "$page")
  shot=${SHOTS:-$(dirname "$abs")}/$(basename "${abs%.html}").png
  flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --no-first-run
         --user-data-dir="$TMP/profile" --enable-logging=stderr --v=0 --virtual-time-budget=5000)
  timeout 120 "$CHROME" "${flags[@]}" --window-size=1280,"${HEIGHT:-7000}" --screenshot="$shot" "file://$abs" \
    >"$TMP/shot.out" 2>"$TMP/shot.log" || true
  timeout 120 "$CHROME" "${flags[@]}" --dump-dom "file://$abs" >"$TMP/dom.html" 2>"$TMP/dom.log" || true
  cat "$TMP/shot.log" "$TMP/dom.log" >"$TMP/console.log"
  if ! "$PY" scripts/page_check_helper.py "$abs" "$TMP/dom.html" "$TMP/console.log" "$shot"; then
    status=1
  fi
done
exit $status
