#!/usr/bin/env bash
# XMPP federation load: messages from an XMPP user of Prosody
# (xmpp.example.test) over s2s (STARTTLS + dialback) into Parley
# (parley.example.test), out as SIP MESSAGE to a SIPp user agent server
# registered as romeo; and, in the same run, Prosody's own c2s -> c2s
# delivery of the same messages between two of its users as the reference.
#
# Prints messages per second end to end (from the first message written to
# the last one received) and CPU time per message of Parley and Prosody
# (from /proc/PID/stat), for COUNT messages (default 20000) per run.
#
# Only 127.0.0.1 is addressed; DNS is dnsmasq on a loopback port serving
# the two domains' SRV records; every wait is bounded.
# Usage: bash tests/benches/xmpp_load.sh   (installs what it needs)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
command -v dnsmasq >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsmasq >/dev/null
}
cargo build --release -q

COUNT=${COUNT:-20000}
RUNS=${RUNS:-3}
PY=var/peers/venv/bin/python
work=$(mktemp -d)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dns_port=$(free_port); p_s2s=$(free_port); x_c2s=$(free_port); x_s2s=$(free_port); sip_port=$(free_port); uas_port=$(free_port)

dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
  --bind-interfaces --port="$dns_port" --local=/example.test/ \
  --srv-host=_xmpp-server._tcp.parley.example.test,parley.example.test,"$p_s2s",0,5 \
  --srv-host=_xmpp-server._tcp.xmpp.example.test,xmpp.example.test,"$x_s2s",0,5 \
  --host-record=parley.example.test,127.0.0.1 --host-record=xmpp.example.test,127.0.0.1 \
  > "$work/dnsmasq.log" 2>&1 &

# Prosody, as its own user, with its certificate, data and log in $work.
mkdir -p "$work/prosody/data" "$work/prosody/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=xmpp.example.test \
  -addext subjectAltName=DNS:xmpp.example.test \
  -keyout "$work/prosody/certs/xmpp.example.test.key" -out "$work/prosody/certs/xmpp.example.test.crt" 2>/dev/null
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
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; }
modules_disabled = { "s2s_bidi"; "offline"; "posix"; }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = false
log = { ${PROSODY_LOG:-warn} = "$work/prosody/prosody.log" }
unbound = { resolvconf = false; hoststxt = false; forward = "127.0.0.1@$dns_port"; options = { ["do-not-query-localhost:"] = "no"; ["local-zone:"] = "test. transparent" } }
VirtualHost "xmpp.example.test"
LUA
chown -R prosody:prosody "$work/prosody"
prosody_ctl() { setpriv --reuid=prosody --regid=prosody --init-groups prosodyctl --config "$work/prosody/prosody.cfg.lua" "$@"; }
prosody_ctl register juliet xmpp.example.test load >/dev/null
prosody_ctl register nurse xmpp.example.test load >/dev/null
setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config "$work/prosody/prosody.cfg.lua" \
  > "$work/prosody.out" 2>&1 &
prosody_pid=$!

# Parley serving parley.example.test with its s2s listener; romeo has no
# password check (the SIPp UAS registers without one).
PARLEY_USERS=romeo@parley.example.test start_parley "$sip_port" <<TOML
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
TOML
wait_udp "$sip_port"
for i in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$x_c2s " && break; sleep 0.2; done

# A SIPp user agent server per run, registered as romeo; it ends after
# COUNT messages (-m), so its exit marks the last delivery.
uas() {
  local n=$1
  timeout $((60 + COUNT / 200)) sipp -sf tests/data/sipp/uas_message.xml -t u1 -i 127.0.0.1 -p "$uas_port" \
    -m "$n" -nostdin -buff_size 4194304 -trace_stat -fd 1 -stf "$work/uas.csv" >/dev/null 2>&1 &
  uas_pid=$!
  sleep 0.5
  sipp -sf tests/data/sipp/register_contact.xml -t u1 -i 127.0.0.1 -p 0 -s romeo \
    -key uas_port "$uas_port" -key domain parley.example.test -m 1 -nostdin -timeout 10s \
    127.0.0.1:"$sip_port" >/dev/null 2>&1 || { echo "registering romeo failed"; exit 1; }
}

now() { date +%s.%N; }
hz=$(getconf CLK_TCK)

# Warm-up: one message sets up both s2s links (SRV, STARTTLS, dialback).
uas 1
"$PY" tests/benches/xmpp_blast.py send juliet@xmpp.example.test load "$x_c2s" romeo@parley.example.test 1 >/dev/null
wait "$uas_pid" || { echo "warm-up message not delivered"; tail -5 "$work/parley.log"; exit 1; }

echo "XMPP s2s -> Parley -> SIP MESSAGE (SIPp UAS) vs Prosody c2s -> c2s; $COUNT messages per run, $RUNS runs; all on the same 2 cores"
printf '%-4s %-28s %12s %16s %16s\n' run path "msgs/s" "Parley us/msg" "Prosody us/msg"
for run in $(seq "$RUNS"); do
  # Prosody alone: juliet -> nurse, both its own users.
  "$PY" tests/benches/xmpp_blast.py recv nurse@xmpp.example.test load "$x_c2s" "$COUNT" > "$work/recv.out" &
  recv_pid=$!
  for i in $(seq 100); do grep -q ready "$work/recv.out" 2>/dev/null && break; sleep 0.1; done
  x0=$(ticks "$prosody_pid"); t0=$(now)
  "$PY" tests/benches/xmpp_blast.py send juliet@xmpp.example.test load "$x_c2s" nurse@xmpp.example.test "$COUNT" >/dev/null &
  send_pid=$!
  wait "$recv_pid" || true
  t1=$(now); x1=$(ticks "$prosody_pid")
  wait "$send_pid" || true
  got=$(awk 'NR==2 { print $2 }' "$work/recv.out")
  awk -v n="${got:-0}" -v t0="$t0" -v t1="$t1" -v xd=$((x1 - x0)) -v hz="$hz" -v r="$run" 'BEGIN {
    printf "%-4s %-28s %12.0f %16s %16.1f\n", r, "prosody c2s->c2s", n / (t1 - t0), "-", (n > 0 ? xd * 1e6 / hz / n : 0) }'
  # Through Parley.
  uas "$COUNT"
  p0=$(ticks "$parley_pid"); x0=$(ticks "$prosody_pid"); t0=$(now)
  "$PY" tests/benches/xmpp_blast.py send juliet@xmpp.example.test load "$x_c2s" romeo@parley.example.test "$COUNT" >/dev/null &
  send_pid=$!
  wait "$uas_pid" || true
  t1=$(now); p1=$(ticks "$parley_pid"); x1=$(ticks "$prosody_pid")
  ok=$(awk -F';' 'NR==1 { for (i=1;i<=NF;i++) if ($i=="SuccessfulCall(C)") s=i } END { print $s+0 }' "$work/uas.csv")
  wait "$send_pid" || true
  awk -v n="$ok" -v t0="$t0" -v t1="$t1" -v pd=$((p1 - p0)) -v xd=$((x1 - x0)) -v hz="$hz" -v r="$run" 'BEGIN {
    printf "%-4s %-28s %12.0f %16.1f %16.1f\n", r, "xmpp->parley->sip", n / (t1 - t0), pd * 1e6 / hz / n, xd * 1e6 / hz / n }'
  [ "$ok" -eq "$COUNT" ] || echo "  only $ok of $COUNT delivered"
done
