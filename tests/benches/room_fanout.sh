#!/usr/bin/env bash
# Chat-room fan-out: one message to a room of MEMBERS receivers, measured in
# the same run on the same machine for
#   Parley: a room Parley hosts, half of the members SIP pager-mode users
#           (one UDP socket of the load tool answers their MESSAGEs), half
#           XMPP occupants logged in to Prosody and in the room over s2s;
#           a SIP member speaks;
#   Prosody: a room on Prosody's own MUC with MEMBERS XMPP occupants (c2s);
#           an occupant speaks.
# For each of MESSAGES messages, said one after the other: the time until
# every member has its copy (median and 95th percentile), copies per
# second, and the server's CPU time per copy (/proc/PID/stat); then the
# ratios. The load tool is examples/room_fanout.rs.
#
# Only 127.0.0.1 is addressed (dnsmasq on a loopback port serves the SRV
# records); every wait is bounded.
# Usage: bash tests/benches/room_fanout.sh   (installs what it needs)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
command -v dnsmasq >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsmasq >/dev/null
}
cargo build --release -q
cargo build --release -q --example room_fanout
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

MEMBERS=${MEMBERS:-1000}
MESSAGES=${MESSAGES:-30}
PY=var/peers/venv/bin/python
work=$(mktemp -d)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dns_port=$(free_port); p_s2s=$(free_port); x_c2s=$(free_port); x_s2s=$(free_port); sip_port=$(free_port)

dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
  --bind-interfaces --port="$dns_port" --local=/example.test/ \
  --srv-host=_xmpp-server._tcp.parley.example.test,parley.example.test,"$p_s2s",0,5 \
  --srv-host=_xmpp-server._tcp.conference.parley.example.test,parley.example.test,"$p_s2s",0,5 \
  --srv-host=_xmpp-server._tcp.xmpp.example.test,xmpp.example.test,"$x_s2s",0,5 \
  --srv-host=_xmpp-server._tcp.muc.xmpp.example.test,xmpp.example.test,"$x_s2s",0,5 \
  --host-record=parley.example.test,127.0.0.1 --host-record=xmpp.example.test,127.0.0.1 \
  > "$work/dnsmasq.log" 2>&1 &

# Prosody: anonymous logins (no accounts to make), a MUC service whose
# rooms open at once, as its own user with its files in $work.
mkdir -p "$work/prosody/data" "$work/prosody/certs"
for host in xmpp.example.test muc.xmpp.example.test; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" \
    -keyout "$work/prosody/certs/$host.key" -out "$work/prosody/certs/$host.crt" 2>/dev/null
done
cat > "$work/prosody/prosody.cfg.lua" <<LUA
pidfile = "$work/prosody/prosody.pid"
data_path = "$work/prosody/data"
certificates = "$work/prosody/certs"
interfaces = { "127.0.0.1" }
c2s_ports = { $x_c2s }
s2s_ports = { $x_s2s }
component_ports = { }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "saslauth"; "tls"; "dialback"; "disco"; "ping"; }
modules_disabled = { "s2s_bidi"; "offline"; "posix"; }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = false
log = { ${PROSODY_LOG:-warn} = "$work/prosody/prosody.log" }
unbound = { resolvconf = false; hoststxt = false; forward = "127.0.0.1@$dns_port"; options = { ["do-not-query-localhost:"] = "no"; ["local-zone:"] = "test. transparent" } }
VirtualHost "xmpp.example.test"
    authentication = "anonymous"
    allow_anonymous_s2s = true
Component "muc.xmpp.example.test" "muc"
    muc_room_locking = false
    restrict_room_creation = false
    max_history_messages = 0
LUA
chown -R prosody:prosody "$work/prosody"
setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config "$work/prosody/prosody.cfg.lua" \
  > "$work/prosody.out" 2>&1 &
prosody_pid=$!

# Parley serving parley.example.test (rooms in conference.parley.example.test);
# no digest (the load tool's SIP users register without one); room limits
# raised for one large room, and a member's outbox sized for the entry of
# a thousand members one after the other (each entry is a notice to every
# member already in). The SIP members are provisioned users.
half=$((MEMBERS / 2))
users="sender@parley.example.test"
for i in $(seq 0 $((half - 1))); do users="$users s$i@parley.example.test"; done
PARLEY_USERS="$users" start_parley "$sip_port" <<TOML
domains = ["parley.example.test"]
[auth]
registrar = false
proxy = false
[dns]
nameserver = "127.0.0.1:$dns_port"
[xmpp]
listen = "127.0.0.1:$p_s2s"
[gateway]
rate_per_domain = 0
[rooms]
max_members = $((MEMBERS * 2))
joins_per_minute = 100000
member_queue = 4096
TOML
wait_udp "$sip_port"
for i in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$x_c2s " && break; sleep 0.2; done

tool=target/release/examples/room_fanout
echo "one message to a room of $MEMBERS members, $MESSAGES messages in turn; all on the same 2 cores"
p_line=$(timeout 900 "$tool" parley --c2s "127.0.0.1:$x_c2s" --domain xmpp.example.test \
  --room bench@conference.parley.example.test --members "$MEMBERS" --messages "$MESSAGES" \
  --sip "127.0.0.1:$sip_port" --sip-domain parley.example.test --sip-members "$half" --pid "$parley_pid" \
  || echo "parley: failed")
echo "$p_line ($half SIP pager + $((MEMBERS - half)) XMPP through Prosody s2s)"
x_line=$(timeout 900 "$tool" prosody --c2s "127.0.0.1:$x_c2s" --domain xmpp.example.test \
  --room bench@muc.xmpp.example.test --members "$MEMBERS" --messages "$MESSAGES" --pid "$prosody_pid" \
  || echo "prosody: failed")
echo "$x_line (all XMPP, c2s)"
awk -v p="$p_line" -v x="$x_line" 'BEGIN {
  n = split(p, a, " "); m = split(x, b, " ");
  for (i = 1; i <= n; i++) { if (a[i] == "median") pm = a[i+1]; if (a[i] == "us") pc = a[i-1] }
  for (i = 1; i <= m; i++) { if (b[i] == "median") xm = b[i+1]; if (b[i] == "us") xc = b[i-1] }
  printf "ratio parley/prosody: time to all %.2fx faster, CPU per copy %.2fx less\n", (pm > 0 ? xm / pm : 0), (pc > 0 ? xc / pc : 0) }'
