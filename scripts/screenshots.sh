#!/usr/bin/env bash
# Refresh the README's screenshots of the explorer. The browser tests (tests/app/test_browser.py)
# drive every page in headless chromium and save one PNG per page into $PROBE_ARTIFACTS; this
# script runs them and copies the ones the README shows into docs/img/.
# Needs the dev extra and Debian's chromium + chromium-driver.
set -euo pipefail
cd "$(dirname "$0")/.."
shots=$(mktemp -d)
trap 'rm -rf "$shots"' EXIT
OMP_NUM_THREADS=1 PROBE_ARTIFACTS="$shots" python -m pytest tests/app/test_browser.py -q -p no:cacheprovider \
  -k "every_page"
mkdir -p docs/img
for page in states runs; do
  cp "$shots/$page.png" "docs/img/$page.png"
  echo "docs/img/$page.png"
done
