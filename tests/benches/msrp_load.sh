#!/usr/bin/env bash
# MSRP relaying: the same load client (examples/msrp_load.rs) authenticates
# with AUTH to Parley's relay and to Kamailio 5.6's msrp module, measured in
# the same run on the same machine, and sends SENDs through each to a
# receiver it runs itself (which answers every SEND, as an endpoint does):
# 200-byte messages and 64 KiB messages, WINDOW transactions open. Prints
# messages per second and the relay's CPU time per chunk for both, the
# ratios, and one 10 MiB message chunked end to end through each.
# Kamailio 5.6's msrp module answers 501 to chunks of 16 KiB and more once
# they come back to back (it loses the framing across TCP reads), so the
# larger messages are compared at 8 KiB chunks (LARGE_SIZE), and Parley
# alone is also measured with 64 KiB chunks.
#
# Only 127.0.0.1 is addressed; every run is bounded by its message count.
# Usage: bash tests/benches/msrp_load.sh   (installs Kamailio)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
cargo build --release -q --example msrp_load
cargo build --release -q
SMALL=${SMALL:-100000}
LARGE=${LARGE:-10000}
LARGE_SIZE=${LARGE_SIZE:-8192}
WINDOW=${WINDOW:-32}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

PARLEY_USERS=alice@localhost start_parley 25360 <<TOML
[msrp]
listen = "127.0.0.1:25362"
listen_tls = "127.0.0.1:25363"
TOML
mpath=$(kamailio_modules)/
sed -e "s|RELAYTCP|25372|g" -e "s|PORT|25370|g" -e "s|MPATH|$mpath|" -e "s|children=2|children=${KAM_CHILDREN:-2}|" \
  tests/data/kamailio/msrp-relay.cfg > "$work/kamailio.cfg"
mkdir -p "$work/kam"
kamailio -DD -E -f "$work/kamailio.cfg" -m 512 -Y "$work/kam" -P "$work/kam/pid" -w "$work/kam" > "$work/kamailio.log" 2>&1 &
kam_pid=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/25362) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/25372) 2>/dev/null && break
  sleep 0.1
done
sleep 0.5
load=target/release/examples/msrp_load

run() { # name addr user password size count [extra]
  local name=$1 addr=$2 user=$3 pw=$4 size=$5 count=$6 pid=$7
  shift 7
  printf '%-9s ' "$name"
  timeout 600 "$load" "$addr" "$user" "$pw" "$size" "$count" --window "$WINDOW" --pid "$pid" "$@"
}

echo "MSRP SEND through a relay, load client and receiver on the same 2 cores, $WINDOW transactions open"
echo "200-byte messages ($SMALL):"
p_small=$(run parley 127.0.0.1:25362 alice load 200 "$SMALL" "$parley_pid" || echo "parley failed")
echo "$p_small"
k_small=$(run kamailio 127.0.0.1:25372 alice kampw 200 "$SMALL" "$kam_pid" || echo "kamailio failed")
echo "$k_small"
echo "$LARGE_SIZE-byte messages ($LARGE, one chunk each):"
p_large=$(run parley 127.0.0.1:25362 alice load "$LARGE_SIZE" "$LARGE" "$parley_pid" --chunk "$LARGE_SIZE" || echo "parley failed")
echo "$p_large"
k_large=$(run kamailio 127.0.0.1:25372 alice kampw "$LARGE_SIZE" "$LARGE" "$kam_pid" --chunk "$LARGE_SIZE" || echo "kamailio failed")
echo "$k_large"
echo "64 KiB messages, one chunk each (more than Kamailio reads in one frame):"
run parley 127.0.0.1:25362 alice load 65536 "$LARGE" "$parley_pid" --chunk 65536 || echo "parley failed"
echo "one 10 MiB message in $LARGE_SIZE-byte chunks:"
run parley 127.0.0.1:25362 alice load 10485760 1 "$parley_pid" --chunk "$LARGE_SIZE" || echo "parley: failed"
run kamailio 127.0.0.1:25372 alice kampw 10485760 1 "$kam_pid" --chunk "$LARGE_SIZE" || echo "kamailio: failed"

ratio() { # parley-line kamailio-line label
  awk -v p="$1" -v k="$2" -v label="$3" 'BEGIN {
    split(p, a, " "); split(k, b, " ");
    for (i in a) if (a[i] == "messages/s,") pm = a[i-1]; for (i in b) if (b[i] == "messages/s,") km = b[i-1];
    for (i in a) if (a[i] == "us/chunk") pc = a[i-1]; for (i in b) if (b[i] == "us/chunk") kc = b[i-1];
    printf "ratio parley/kamailio, %s: rate %.2fx, CPU per chunk %.2fx less\n", label, (km > 0 ? pm / km : 0), (pc > 0 ? kc / pc : 0) }'
}
ratio "$p_small" "$k_small" "200 B"
ratio "$p_large" "$k_large" "$LARGE_SIZE B"
