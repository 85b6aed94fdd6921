#!/usr/bin/env bash
# MESSAGE relaying: a SIPp client sends MESSAGE to bob@localhost,
# registered at a SIPp user agent server, through Parley and through
# Kamailio 5.6 as registrar + stateful proxy (usrloc, lookup, t_relay),
# measured in the same run on the same machine with the same scenarios.
# Neither server authenticates, so both do the same work.
#
# For each server it prints the highest rate held with < 0.1 % failed
# calls and no retransmissions, and the server's CPU time per relayed
# MESSAGE at a fixed rate both hold (from /proc/PID/stat); then the ratios.
#
# Only 127.0.0.1 is addressed; every SIPp run is bounded by -m and a timeout.
# The client speaks UDP, or TCP with TRANSPORT=t1 (one connection); the
# UAS is reached over UDP.
# Usage: bash tests/benches/message_load.sh   (installs SIPp and Kamailio)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
cargo build --release -q

RATES=${RATES:-"2000 4000 6000 8000 10000 12000 14000 16000 18000 20000 24000 28000 32000 36000 40000"}
SECONDS_PER_RATE=${SECONDS_PER_RATE:-4}
FIXED_RATE=${FIXED_RATE:-3000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Parley, with bob provisioned and authentication off.
# The load's sender is of another domain, so Parley would archive each
# message (the compliance archive, [archive] mode cross-domain); Kamailio
# archives nothing, so neither does Parley here unless ARCHIVE says so.
PARLEY_USERS=bob@localhost start_parley 25060 <<TOML
[auth]
registrar = false
proxy = false
[archive]
mode = "${ARCHIVE:-none}"
TOML

# Kamailio
start_kamailio registrar-proxy.cfg 25070
wait_udp 25060
wait_udp 25070
sleep 1

# One SIPp user agent server per proxy, registered as bob.
message_uas 25160 25060
message_uas 25170 25070

scenario=tests/data/sipp/message_load.xml
echo "MESSAGE over ${TRANSPORT:-u1} through a registrar+proxy, SIPp (client and UAS) on the same 2 cores; rates tried: $RATES (${SECONDS_PER_RATE}s each)"
p_cpu=$(cpu_per_request $scenario 25060 $parley_pid)
k_cpu=$(cpu_per_request $scenario 25070 $kam_pid)
p_max=$(max_rate $scenario 25060)
k_max=$(max_rate $scenario 25070)
report MESSAGE "$p_max" "$p_cpu" "$k_max" "$k_cpu"
