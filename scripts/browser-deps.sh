#!/usr/bin/env bash
# The gallery's browser test drives Debian's Chromium (a browser download does not work here).
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Chromium is missing: run 'sudo apt-get install -y chromium' for the browser tests." >&2
  exit 0
fi
echo "Installing Debian's chromium for the browser tests..."
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
