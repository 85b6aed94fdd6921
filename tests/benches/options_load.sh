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
bash tests/peers/install.sh >/dev/null
command -v kamailio >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null; }
cargo build --release -q

RATES=${RATES:-"4000 8000 12000 16000 20000 24000 28000 32000 36000 40000"}
SECONDS_PER_RATE=${SECONDS_PER_RATE:-4}
FIXED_RATE=${FIXED_RATE:-5000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Parley
cat > "$work/parley.toml" <<TOML
state_dir = "$work/var"
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:25060"
[log]
level = "warn"
TOML
target/release/parley run --config "$work/parley.toml" > "$work/parley.log" 2>&1 &
parley_pid=$!

# Kamailio
mpath=$(dirname "$(find /usr/lib -name sl.so -path '*kamailio*' | head -n1)")/
sed -e "s|PORT|25070|" -e "s|MPATH|$mpath|" tests/data/kamailio/options-stateless.cfg > "$work/kamailio.cfg"
mkdir -p "$work/kam"
kamailio -DD -E -f "$work/kamailio.cfg" -n 2 -m 256 -Y "$work/kam" -P "$work/kam/pid" -w "$work/kam" > "$work/kamailio.log" 2>&1 &
kam_pid=$!
sleep 2

# CPU ticks (utime + stime) of a process and its children processes.
ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}

# Runs SIPp at a rate; prints "successful failed retransmissions".
run_sipp() {
  local port=$1 rate=$2 calls=$3 stats="$work/stats-$1-$2.csv"
  rm -f "$stats"
  timeout $((SECONDS_PER_RATE + 20)) sipp -sf tests/data/sipp/options_load.xml -t u1 -i 127.0.0.1 -p 0 \
    -r "$rate" -m "$calls" -nostdin -timeout $((SECONDS_PER_RATE + 15))s -buff_size 1048576 \
    -trace_stat -stf "$stats" -fd 1 127.0.0.1:"$port" >/dev/null 2>&1 || true
  awk -F';' 'NR==1 { for (i=1;i<=NF;i++) { if ($i=="SuccessfulCall(C)") s=i; if ($i=="FailedCall(C)") f=i; if ($i=="Retransmissions(C)") r=i } }
             END { print $s+0, $f+0, $r+0 }' "$stats"
}

max_rate() {
  local port=$1 best=0 rate ok fail retr calls
  for rate in $RATES; do
    calls=$((rate * SECONDS_PER_RATE))
    read -r ok fail retr < <(run_sipp "$port" "$rate" "$calls")
    if [ "$retr" -eq 0 ] && [ $((fail * 1000)) -lt "$calls" ] && [ "$ok" -ge $((calls * 999 / 1000)) ]; then
      best=$rate
    else
      break
    fi
  done
  echo "$best"
}

cpu_per_request() {
  local port=$1 pid=$2 calls=$((FIXED_RATE * SECONDS_PER_RATE)) before after
  before=$(ticks "$pid")
  read -r ok _ _ < <(run_sipp "$port" "$FIXED_RATE" "$calls")
  after=$(ticks "$pid")
  local hz; hz=$(getconf CLK_TCK)
  # microseconds of CPU per answered request
  awk -v d=$((after - before)) -v hz="$hz" -v n="$ok" 'BEGIN { if (n > 0) printf "%.1f", d * 1000000 / hz / n; else print "nan" }'
}

echo "OPTIONS over UDP, SIPp on the same 2 cores; rates tried: $RATES (${SECONDS_PER_RATE}s each)"
p_cpu=$(cpu_per_request 25060 $parley_pid)
k_cpu=$(cpu_per_request 25070 $kam_pid)
p_max=$(max_rate 25060)
k_max=$(max_rate 25070)
printf '%-10s %22s %26s\n' server "max clean rate (req/s)" "CPU per request at ${FIXED_RATE}/s"
printf '%-10s %22s %24s us\n' parley "$p_max" "$p_cpu"
printf '%-10s %22s %24s us\n' kamailio "$k_max" "$k_cpu"
awk -v pm="$p_max" -v km="$k_max" -v pc="$p_cpu" -v kc="$k_cpu" 'BEGIN {
  printf "ratio parley/kamailio: rate %.2fx, CPU per request %.2fx less\n", (km > 0 ? pm / km : 0), (pc > 0 ? kc / pc : 0) }'
