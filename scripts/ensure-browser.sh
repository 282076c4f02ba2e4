#!/usr/bin/env bash
# The restoration page's browser test needs Debian's chromium and chromedriver
# (tests/service/test_page_browser.py). `make test` runs this first: it installs them when they
# are missing and this machine can (root + apt-get), quietly, and does nothing when they are there.
# Where it cannot, the test skips, and fails under CI=true.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium/chromedriver are missing and cannot be installed here (needs root and" \
       "apt-get): the browser test will be skipped (it fails under CI=true)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing chromium and chromium-driver for the browser test (apt-get)..." >&2
apt-get update -qq >/dev/null 2>&1 || echo "note: apt-get update failed" >&2
if ! apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; then
  echo "note: apt-get install chromium chromium-driver failed: the browser test will be" \
       "skipped (it fails under CI=true)" >&2
fi
exit 0
