#!/usr/bin/env bash
# What a cluster costs: MESSAGE relaying (tests/data/sipp/message_load.xml,
# a SIPp client to bob@localhost registered at a SIPp UAS) through
#   1. one Parley node on SQLite (the embedded default store),
#   2. one Parley node on PostgreSQL,
#   3. two Parley nodes on one PostgreSQL, the load split by two SIPp
#      clients, one per node (bob registered on node A; node B relays to
#      his UDP contact directly),
# all on the same machine in the same run. For each: Parley's CPU time per
# relayed MESSAGE at FIXED_RATE (both nodes' time over both nodes'
# messages for the cluster) and PostgreSQL's, which shows that the relay
# path makes no database round trip. Kamailio (registrar + proxy, as in
# message_load.sh) is measured alongside as the named peer.
#
# Only 127.0.0.1 is addressed; every SIPp run is bounded.
# Usage: bash tests/benches/cluster_load.sh   (installs SIPp, Kamailio, PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
cargo build --release -q

SECONDS_PER_RATE=${SECONDS_PER_RATE:-4}
FIXED_RATE=${FIXED_RATE:-3000}
CPU_SECONDS=${CPU_SECONDS:-10}
work=$(mktemp -d)
chmod 755 "$work"
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort | tail -n1)")
pg_port=25432
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -n "${pg_pid:-}" ] && kill -INT "$pg_pid" 2>/dev/null || true
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT

# PostgreSQL of its own, as the tests start it.
mkdir -p "$work/pg" && chown postgres:postgres "$work/pg"
setpriv --reuid=postgres --regid=postgres --init-groups "$pgbin/initdb" --auth=trust -U postgres -D "$work/pg/data" >/dev/null
setpriv --reuid=postgres --regid=postgres --init-groups "$pgbin/postgres" -D "$work/pg/data" \
  -c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories="$work/pg" >"$work/pg.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p $pg_port && break; sleep 0.1; done
for db in one two; do "$pgbin/createdb" -h 127.0.0.1 -p $pg_port -U postgres "$db"; done

# A Parley node: NAME PORT STORE-TOML; sets pid_NAME.
node() {
  local name=$1 port=$2 store=$3 dir="$work/$1"
  mkdir -p "$dir"
  cat > "$dir/parley.toml" <<TOML
state_dir = "$dir/var"
$store
[auth]
registrar = false
proxy = false
[archive]
mode = "none"
[xmpp]
enabled = false
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:$port"
[admin]
enabled = false
[msrp]
enabled = false
[log]
level = "warn"
TOML
  target/release/parley user add bob@localhost --password load --config "$dir/parley.toml" >/dev/null
  target/release/parley run --config "$dir/parley.toml" > "$dir/parley.log" 2>&1 &
  eval "pid_$name=$!"
  wait_udp "$port"
}
node sqlite 25060 ""
node pg 25080 "[store]
url = \"postgres://postgres@127.0.0.1:$pg_port/one\""
cluster_store="[store]
url = \"postgres://postgres@127.0.0.1:$pg_port/two\"
[cluster]
secret = \"a-secret-shared-by-the-two-nodes\""
node a 25090 "$cluster_store
node = \"a\""
node b 25091 "$cluster_store
node = \"b\""
start_kamailio registrar-proxy.cfg 25070
wait_udp 25070
sleep 1

message_uas 25160 25060
message_uas 25180 25080
message_uas 25190 25090
message_uas 25170 25070
sleep 1

scenario=tests/data/sipp/message_load.xml
calls=$((FIXED_RATE * CPU_SECONDS))
hz=$(getconf CLK_TCK)
us() { awk -v d="$1" -v hz="$hz" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", d * 1000000 / hz / n; else print "nan" }'; }
pg_ticks() { local t=0 p; for p in $pg_pid $(pgrep -P $pg_pid || true); do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }

# One setup: LABEL PIDS -- PORT[:RATE] ...; prints its line.
measure() {
  local label=$1 pids=$2; shift 2
  local before=0 after=0 pg_before pg_after ok=0 p port rate out
  for p in $pids; do before=$((before + $(ticks "$p"))); done
  pg_before=$(pg_ticks)
  local runs=()
  for target in "$@"; do
    port=${target%%:*}; rate=${target#*:}
    SECONDS_PER_RATE=$CPU_SECONDS run_sipp "$scenario" "$port" "$rate" $((rate * CPU_SECONDS)) > "$work/out-$port" &
    runs+=($!)
  done
  wait "${runs[@]}" || true
  for target in "$@"; do
    port=${target%%:*}
    read -r s _ _ < "$work/out-$port"
    ok=$((ok + s))
  done
  for p in $pids; do after=$((after + $(ticks "$p"))); done
  pg_after=$(pg_ticks)
  printf '%-28s %8s %14s us %14s us\n' "$label" "$ok" "$(us $((after - before)) "$ok")" "$(us $((pg_after - pg_before)) "$ok")"
}

echo "MESSAGE relay at ${FIXED_RATE}/s for ${CPU_SECONDS}s, UDP, SIPp and every server on the same 2 cores"
printf '%-28s %8s %17s %17s\n' setup relayed "server CPU/msg" "PostgreSQL CPU/msg"
measure "kamailio (usrloc in memory)" "$kam_pid" 25070:$FIXED_RATE
measure "parley, SQLite" "$pid_sqlite" 25060:$FIXED_RATE
measure "parley, PostgreSQL" "$pid_pg" 25080:$FIXED_RATE
half=$((FIXED_RATE / 2))
measure "parley, 2 nodes, PostgreSQL" "$pid_a $pid_b" 25090:$half 25091:$half
