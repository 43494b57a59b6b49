#!/usr/bin/env bash
# Make a headless Chromium available for the HTML-report test (tests/diagnostics/test_report.py).
# Idempotent: does nothing when chromium / chromium-browser / google-chrome is already on PATH.
# Installs the Debian package with apt-get when running as root (CI machines); otherwise prints
# what to run and exits 0, so `make test` still runs (the test then fails with this hint).
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "setup_browser: using $(command -v "$name")"
    exit 0
  fi
done

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_browser: no Chromium found; install it with: sudo apt-get install -y chromium" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "setup_browser: installed $(command -v chromium)"
