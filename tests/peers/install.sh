#!/usr/bin/env bash
# Installs the real peers the tests drive: SIPp, sipsak, Kamailio, baresip and
# OpenSSL (Debian packages; Kamailio is not started as a service, the tests run
# their own).
# Runs as root on Debian; does nothing when they are already there.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v sipsak >/dev/null 2>&1 || need+=(sipsak)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
# A real SIMPLE client: registers, publishes, subscribes, sends MESSAGE.
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
# OpenSSL's client speaks TLS to Parley; kill stops Kamailio gently.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
{ [ -x /bin/kill ] || [ -x /usr/bin/kill ]; } || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
sipp -v 2>/dev/null | head -n 2 | tail -n 1 || true
