#!/usr/bin/env bash
# Installs the real peers the tests drive: SIPp, sipsak, Kamailio, baresip,
# Prosody with a slixmpp venv, and OpenSSL (Debian packages; Kamailio is not started as a service, the tests run
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
# XMPP domains: Prosody, resolving through libunbound (lua-unbound) so its
# lookups can be pointed at the test DNS server; setpriv runs it as its user.
command -v prosody >/dev/null 2>&1 || need+=(prosody)
dpkg -s lua-unbound >/dev/null 2>&1 || need+=(lua-unbound)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# A second XMPP server for federation.
command -v ejabberdctl >/dev/null 2>&1 || need+=(ejabberd)
# An IRC network for the IRC adapter.
command -v ngircd >/dev/null 2>&1 || need+=(ngircd)
# An IRCv3 network with TLS and SASL: InspIRCd with Atheme services.
command -v inspircd >/dev/null 2>&1 || need+=(inspircd)
command -v atheme-services >/dev/null 2>&1 || need+=(atheme-services)
# A real STUN client for the keep-alives on the SIP port (RFC 5626 §8).
command -v turnutils_stunclient >/dev/null 2>&1 || need+=(coturn)
# The console page is checked in a headless browser.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# systemd's unit checker reads the packaged unit (systemd-analyze verify).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# PostgreSQL for the cluster tests: the server programs only; the tests
# make and start their own clusters (no main cluster, no service).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] ||
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  need+=(postgresql-15)
fi
# The scripted XMPP clients run in a venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
sipp -v 2>/dev/null | head -n 2 | tail -n 1 || true

# slixmpp for the scripted XMPP clients, in a venv under var/ (git-ignored).
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/var/peers/venv"
if ! "$venv/bin/python" -c 'import slixmpp' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'slixmpp==1.17.0'
fi
