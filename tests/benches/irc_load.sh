#!/usr/bin/env bash
# IRC private messages: SIP MESSAGE from SIPp through Parley's IRC adapter
# (alice's own connection) into ngIRCd to an IRC receiver, measured in the
# same run next to the same number of messages sent by an IRC client
# straight through ngIRCd (the network's own cost). Prints messages per
# second delivered (first to last received) and the CPU time per message of
# Parley and of ngIRCd, then the ratio of Parley's cost to the network's.
#
# Flood control is off on both sides (ngIRCd MaxPenaltyTime=0, Parley
# flood_interval_ms=0): the figure is the path's cost, not the throttle's.
# Only 127.0.0.1 is addressed; every run is bounded by its message count.
# Usage: bash tests/benches/irc_load.sh   (installs what it needs)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
cargo build --release -q
cargo build --release -q --example irc_load
COUNT=${COUNT:-20000}
RATE=${RATE:-10000}
PY=var/peers/venv/bin/python
work=$(mktemp -d)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
irc_port=$(free_port); sip_port=$(free_port)

cat > "$work/ngircd.conf" <<CONF
[Global]
Name = irc.example.test
Info = Parley load
Listen = 127.0.0.1
Ports = $irc_port
PidFile = $work/ngircd.pid
ServerUID = irc
ServerGID = irc
[Limits]
MaxConnectionsIP = 0
MaxNickLength = 30
MaxPenaltyTime = 0
[Options]
DNS = no
Ident = no
PAM = no
CONF
chown -R irc:irc "$work"
ngircd -n -f "$work/ngircd.conf" > "$work/ngircd.log" 2>&1 &
irc_pid=$!
PARLEY_USERS=alice@localhost start_parley "$sip_port" <<TOML
[auth]
registrar = false
proxy = false
[gateway]
rate_per_domain = 0
[[irc.network]]
name = "load"
domain = "irc.example.test"
server = "127.0.0.1:$irc_port"
flood_interval_ms = 0
TOML
wait_udp "$sip_port"
for i in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$irc_port " && break; sleep 0.1; done
tool=target/release/examples/irc_load
hz=$(getconf CLK_TCK)

run_recv() { # nick -> starts the receiver, waits until it is ready
  "$tool" recv "$irc_port" "$1" "$COUNT" > "$work/recv.out" &
  recv_pid=$!
  for i in $(seq 100); do grep -q ready "$work/recv.out" 2>/dev/null && break; sleep 0.1; done
}
report() { # label parley-ticks irc-ticks
  read -r got secs < <(tail -1 "$work/recv.out")
  awk -v l="$1" -v n="$got" -v s="$secs" -v pd="$2" -v xd="$3" -v hz="$hz" -v c="$COUNT" 'BEGIN {
    printf "%-30s %8d of %d %10.0f msg/s %12s %12.1f\n", l, n, c, (s > 0 ? n / s : 0), (pd == "-" ? "-" : sprintf("%.1f", pd * 1e6 / hz / (n > 0 ? n : 1))), xd * 1e6 / hz / (n > 0 ? n : 1) }'
}
echo "IRC private messages, $COUNT per run, all on the same 2 cores"
printf '%-30s %17s %16s %12s %12s\n' path delivered rate "Parley us/msg" "ngIRCd us/msg"

# The network alone: one IRC client to another.
run_recv bob
x0=$(ticks "$irc_pid")
"$tool" send "$irc_port" carol bob "$COUNT"
wait "$recv_pid" || true
x1=$(ticks "$irc_pid")
report "irc client -> ngircd -> irc" - $((x1 - x0))
ngircd_line=$(tail -1 "$work/recv.out")

# Through Parley: SIPp MESSAGEs at RATE/s to bob@irc.example.test.
# One message first opens alice's connection (to a nick no one has).
sipp -sf tests/data/sipp/uac_message_bridged.xml -t u1 -i 127.0.0.1 -p 0 -s alice -key from_domain localhost \
  -key to nobody@irc.example.test -m 1 -nostdin -timeout 20s 127.0.0.1:"$sip_port" >/dev/null 2>&1 || { echo "warm-up failed"; tail -5 "$work/parley.log"; exit 1; }
run_recv dave
p0=$(ticks "$parley_pid"); x0=$(ticks "$irc_pid")
timeout 300 sipp -sf tests/data/sipp/uac_message_bridged.xml -t u1 -i 127.0.0.1 -p 0 -s alice -key from_domain localhost \
  -key to dave@irc.example.test -r "$RATE" -m "$COUNT" -nostdin -timeout 120s -buff_size 4194304 \
  127.0.0.1:"$sip_port" >/dev/null 2>&1 || echo "  (SIPp reported failures)"
wait "$recv_pid" || true
p1=$(ticks "$parley_pid"); x1=$(ticks "$irc_pid")
report "sip -> parley -> ngircd -> irc" $((p1 - p0)) $((x1 - x0))
