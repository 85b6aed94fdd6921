#!/usr/bin/env bash
# PUBLISH fan-out: $WATCHERS SIPp watchers (default 10,000) subscribe to
# alice@localhost, then one PUBLISH changes her presence; the figure is the
# time from that PUBLISH until every watcher has answered the NOTIFY it
# caused (the SIPp watcher process ends when the last one has). Measured for
# Parley and, in the same run, for Kamailio 5.6 with presence and
# presence_xml (watchers forced active, subscriptions in memory, SQLite
# behind). Also Parley's resident memory per subscription.
#
# Kamailio runs one worker: with more, its SQLite writes collide ("database
# is locked") and SUBSCRIBEs fail. Its NOTIFYs for one PUBLISH go out from
# the one process that handles the PUBLISH either way.
#
# Only 127.0.0.1 is addressed; every SIPp run is bounded by -m and a timeout.
# Usage: bash tests/benches/presence_fanout.sh   (installs SIPp and Kamailio)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
# Kamailio's presence and SQLite modules; Python makes its database.
if [ ! -e "$(kamailio_modules)/presence_xml.so" ] || [ ! -e "$(kamailio_modules)/db_sqlite.so" ] \
  || ! command -v python3 >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    kamailio-presence-modules kamailio-sqlite-modules python3 >/dev/null
fi
cargo build --release -q

WATCHERS=${WATCHERS:-10000}
SUB_RATE=${SUB_RATE:-500}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

PARLEY_USERS=alice@localhost start_parley 25060 <<TOML
[auth]
registrar = false
proxy = false
[presence]
default_policy = "allow"
max_expires = 3600
TOML

# Kamailio's presence tables, in WAL mode.
python3 - "$work/kamailio.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for f in ["standard-create.sql", "presence-create.sql"]:
    c.executescript(open("/usr/share/kamailio/db_sqlite/" + f).read())
c.execute("PRAGMA journal_mode=WAL")
c.commit()
PY
KAM_CHILDREN=1 start_kamailio presence.cfg 25270
wait_udp 25060
wait_udp 25270
sleep 1

now() { date +%s.%N; }

# Usage: fanout PORT PID; prints "seconds ok failed rss_before_kib rss_after_kib".
fanout() {
  local port=$1 pid=$2 stats="$work/fanout-$1.csv" before after t0 t1 watchers_pid
  rm -f "$stats"
  before=$(rss_kib "$pid")
  timeout $((WATCHERS / SUB_RATE + 360)) sipp -sf tests/data/sipp/watcher_fanout.xml -t u1 -i 127.0.0.1 -p 0 \
    -key to alice@localhost -key domain localhost -m "$WATCHERS" -l "$WATCHERS" -r "$SUB_RATE" \
    -nostdin -buff_size 4194304 -trace_stat -stf "$stats" -fd 1 -trace_err -error_file "$work/errors-$port.log" 127.0.0.1:"$port" >/dev/null 2>&1 &
  watchers_pid=$!
  # Every watcher subscribed and answered its first NOTIFY; then the
  # SUBSCRIBE and NOTIFY transactions end (Timer J, 32 s), so what stays
  # is the subscriptions.
  sleep $((WATCHERS / SUB_RATE + 5 + ${SETTLE:-35}))
  after=$(rss_kib "$pid")
  t0=$(now)
  sipp -sf tests/data/sipp/publish_once.xml -t u1 -i 127.0.0.1 -p 0 -s alice -key domain localhost \
    -m 1 -nostdin -timeout 10s 127.0.0.1:"$port" >/dev/null 2>&1 || echo "the PUBLISH to $port failed" >&2
  wait "$watchers_pid" || true
  t1=$(now)
  # The first faults, when there are any, for the operator.
  [ -s "$work/errors-$port.log" ] && head -c 1500 "$work/errors-$port.log" >&2 || true
  awk -F';' -v t0="$t0" -v t1="$t1" -v b="$before" -v a="$after" '
    NR==1 { for (i=1;i<=NF;i++) { if ($i=="SuccessfulCall(C)") s=i; if ($i=="FailedCall(C)") f=i } }
    END { printf "%.3f %d %d %d %d\n", t1 - t0, $s, $f, b, a }' "$stats"
}

echo "PUBLISH fan-out to $WATCHERS SIPp watchers (subscribed at $SUB_RATE/s), SIPp on the same 2 cores"
read -r p_time p_ok p_fail p_before p_after < <(fanout 25060 "$parley_pid")
read -r k_time k_ok k_fail _ _ < <(fanout 25270 "$kam_pid")
printf '%-10s %12s %10s %8s\n' server "fan-out (s)" answered failed
printf '%-10s %12s %10s %8s\n' parley "$p_time" "$p_ok" "$p_fail"
printf '%-10s %12s %10s %8s\n' kamailio "$k_time" "$k_ok" "$k_fail"
awk -v p="$p_time" -v k="$k_time" -v b="$p_before" -v a="$p_after" -v n="$WATCHERS" 'BEGIN {
  printf "ratio: Parley %.2fx faster\n", (p > 0 ? k / p : 0)
  printf "Parley resident memory per subscription: %.0f bytes (%d KiB before, %d KiB with the watchers)\n", (a - b) * 1024 / n, b, a }'
