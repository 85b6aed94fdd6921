#!/usr/bin/env bash
# Installs the real peers the tests drive: SIPp and sipsak (Debian packages).
# Runs as root on Debian; does nothing when they are already there.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v sipsak >/dev/null 2>&1 || need+=(sipsak)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
sipp -v 2>/dev/null | head -n 2 | tail -n 1 || true
