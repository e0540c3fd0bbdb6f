#!/usr/bin/env bash
# System packages the tests use (the product itself needs none: audio decoding and espeak-ng come from pip).
# Debian's chromium + chromium-driver drive the headless browser test of the demo.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and cannot apt-get install here; the browser test will be skipped" >&2
  fi
fi
