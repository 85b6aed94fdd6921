#!/usr/bin/env bash
# OPTIONS load over UDP: Parley and Kamailio (stateless sl_send_reply),
# measured in the same run on the same machine with the same SIPp scenario.
#
# For each server it prints:
#   - the highest rate held with < 0.1 % failed calls and no retransmissions
#     (SIPp sends for a few seconds at each rate, rising);
#   - the CPU time the server spends per request at a fixed rate both hold,
#     from /proc/PID/stat (utime + stime over the server's processes);
# and the ratios Parley / Kamailio.
#
# Only 127.0.0.1 is addressed; every SIPp run is bounded by -m and a timeout.
# Usage: bash tests/benches/options_load.sh   (installs SIPp and Kamailio)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
cargo build --release -q

RATES=${RATES:-"4000 8000 12000 16000 20000 24000 28000 32000 36000 40000"}
SECONDS_PER_RATE=${SECONDS_PER_RATE:-4}
FIXED_RATE=${FIXED_RATE:-5000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Parley
start_parley 25060 </dev/null

# Kamailio
start_kamailio options-stateless.cfg 25070
wait_udp 25060
wait_udp 25070
sleep 1

scenario=tests/data/sipp/options_load.xml
echo "OPTIONS over UDP, SIPp on the same 2 cores; rates tried: $RATES (${SECONDS_PER_RATE}s each)"
p_cpu=$(cpu_per_request $scenario 25060 $parley_pid)
k_cpu=$(cpu_per_request $scenario 25070 $kam_pid)
p_max=$(max_rate $scenario 25060)
k_max=$(max_rate $scenario 25070)
report OPTIONS "$p_max" "$p_cpu" "$k_max" "$k_cpu"
