#!/usr/bin/env bash
# Overload: SIPp floods MESSAGE for a user with no contact (each accepted
# one is written to the store, synced, before its 202) at FLOOD_RATE for
# FLOOD_SECONDS, several times what the store path holds here. Prints how
# many were kept (202) and turned away (503), the response times of the
# kept ones, Parley's resident memory before, at its peak and 10 s after,
# and whether OPTIONS and MESSAGE work 10 s after the flood; memory again
# 60 s after (SETTLE), once the admitted transactions have ended.
# Then one address holds IDLE (10,000) idle TCP connections and SLOW (200)
# slowloris ones (a byte every 5 s) while a second client asks over TCP and
# over TLS: it must be answered.
#
# Only 127.0.0.1 is addressed; SIPp runs are bounded by -m and a timeout.
# Usage: bash tests/benches/overload_load.sh   (installs SIPp)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/benches/lib.sh
install_load_peers
cargo build --release -q

# Room for the held connections on both sides (Parley inherits it, as it
# would from LimitNOFILE in a service unit).
IDLE=${IDLE:-10000}
SLOW=${SLOW:-200}
ulimit -n $((IDLE + SLOW + 4096)) 2>/dev/null || true

FLOOD_RATE=${FLOOD_RATE:-10000}
FLOOD_SECONDS=${FLOOD_SECONDS:-6}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# The default config but for authentication (SIPp does not answer digest)
# and the shares of the offline store, which the flood would fill first:
# what is measured here is the store path under load, not the caps.
PARLEY_USERS="carol@localhost bob@localhost" start_parley 25260 <<TOML
[auth]
registrar = false
proxy = false
[offline]
max_per_user = 100000000
max_per_sender_domain = 100000000
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:25261"
TOML
wait_udp 25260
sleep 1
idle=$(rss_kib "$parley_pid")
idle_anon=$(awk '/^Anonymous:/ { print $2 }' "/proc/$parley_pid/smaps_rollup" 2>/dev/null || echo 0)

peak=$idle
( while kill -0 "$parley_pid" 2>/dev/null; do
    r=$(rss_kib "$parley_pid" 2>/dev/null || echo 0)
    echo "$r" >> "$work/rss"
    sleep 0.25
  done ) &

calls=$((FLOOD_RATE * FLOOD_SECONDS))
stats="$work/flood.csv"
timeout $((FLOOD_SECONDS + 60)) sipp -sf tests/data/sipp/message_flood.xml -t u1 -i 127.0.0.1 -p 0 \
  -key to carol@localhost -r "$FLOOD_RATE" -m "$calls" -nostdin -timeout $((FLOOD_SECONDS + 45))s \
  -buff_size 1048576 -trace_stat -stf "$stats" -fd 1 -trace_counts 127.0.0.1:25260 >/dev/null 2>&1 || true
counts=$(ls message_flood_*_counts.csv 2>/dev/null | head -n 1 || true)

peak=$(sort -n "$work/rss" | tail -n 1)
echo "flood: $calls MESSAGEs at ${FLOOD_RATE}/s for ${FLOOD_SECONDS}s, each accepted one synced to SQLite before its 202"
# Kept (202) and turned away (503): the recv lines of the counts file.
if [ -n "$counts" ] && [ -f "$counts" ]; then
  awk -F';' 'NR==1 { next } $2 ~ /202/ { print "  kept (202):        " $4 } $2 ~ /503/ { print "  turned away (503): " $4 }' "$counts" || true
  rm -f "$counts"
fi
awk -F';' 'NR==1 { for (i=1;i<=NF;i++) h[i]=$i; next } { last=$0 }
  END { n=split(last, v, ";"); printf "  calls: successful %s failed %s, retransmissions %s\n", v[idx("SuccessfulCall(C)")], v[idx("FailedCall(C)")], v[idx("Retransmissions(C)")];
        printf "  response time of kept ones (ms, calls per bucket):";
        for (i=1;i<=n;i++) if (h[i] ~ /^ResponseTimeRepartition1_/) printf " %s=%s", substr(h[i], 26), v[i];
        printf "\n  response time of turned-away ones (ms, calls per bucket):";
        for (i=1;i<=n;i++) if (h[i] ~ /^ResponseTimeRepartition2_/) printf " %s=%s", substr(h[i], 26), v[i];
        printf "\n" }
  function idx(name,   i) { for (i in h) if (h[i] == name) return i; return 0 }' "$stats"

AFTER=${AFTER:-10}
sleep "$AFTER"
after=$(rss_kib "$parley_pid")
echo "  Parley resident memory: idle $((idle / 1024)) MiB, peak $((peak / 1024)) MiB, ${AFTER} s after $((after / 1024)) MiB"
if sipsak -s sip:127.0.0.1:25260 >/dev/null 2>&1; then echo "  OPTIONS ${AFTER} s after: 200"; else echo "  OPTIONS ${AFTER} s after: FAILED"; fi
if timeout 20 sipp -sf tests/data/sipp/uac_message_stored.xml -t u1 -i 127.0.0.1 -p 0 -key to bob@localhost \
   -s flood -key domain example.com -m 1 -nostdin -timeout 15s 127.0.0.1:25260 >/dev/null 2>&1; then
  echo "  MESSAGE ${AFTER} s after: 202"
else
  echo "  MESSAGE ${AFTER} s after: FAILED"
fi
# Admitted UDP transactions live on for Timer J (32 s) after their answer,
# as RFC 3261 asks; memory is read again once they are gone.
SETTLE=${SETTLE:-60}
[ "$SETTLE" -gt "$AFTER" ] && sleep $((SETTLE - AFTER))
settled=$(rss_kib "$parley_pid")
anon=$(awk '/^Anonymous:/ { print $2 }' "/proc/$parley_pid/smaps_rollup" 2>/dev/null || echo 0)
echo "  Parley resident memory ${SETTLE} s after: $((settled / 1024)) MiB (anonymous $((anon / 1024)) MiB; idle was $((idle / 1024)) MiB, anonymous $((idle_anon / 1024)) MiB)"

# Connections: one address opens IDLE idle connections and SLOW slowloris
# ones; meanwhile another client is answered over TCP and TLS.
python3 - "$IDLE" "$SLOW" > "$work/hold.log" 2>&1 <<'PY' &
import socket, sys, time
idle, slow = int(sys.argv[1]), int(sys.argv[2])
held, refused = [], 0
def open_one():
    s = socket.socket()
    s.setblocking(True)
    s.settimeout(2)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", 25260))
    return s
for _ in range(idle):
    try:
        held.append(open_one())
    except OSError:
        refused += 1
drips = []
for _ in range(slow):
    try:
        d = open_one()
        d.send(b"O")
        drips.append(d)
    except OSError:
        refused += 1
print(f"opened {len(held)} idle and {len(drips)} slowloris connections ({refused} refused at connect)", flush=True)
deadline = time.time() + 25
while time.time() < deadline:
    for d in drips:
        try:
            d.send(b"P")
        except OSError:
            pass
    time.sleep(5)
alive = 0
for s in held + drips:
    try:
        s.settimeout(0.001)
        if s.recv(1) != b"":
            alive += 1
    except socket.timeout:
        alive += 1
    except OSError:
        pass
print(f"after 25 s, {alive} of {len(held) + len(drips)} still open", flush=True)
PY
hold=$!
sleep 12
ss -ltn 2>/dev/null | grep -q '127.0.0.1:25261 ' || echo "  (nothing listens on tls 25261)"
tcp_ok=no; tls_ok=no
sipsak -E tcp -s sip:127.0.0.1:25260 >/dev/null 2>&1 && tcp_ok=yes
tls_reply=$(printf 'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.4:5061;branch=z9hG4bKtlsprobe\r\nFrom: <sip:probe@example.com>;tag=t1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tls-probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
  | timeout 10 openssl s_client -connect 127.0.0.1:25261 -quiet -ign_eof 2>/dev/null | head -n 1 || true)
case "$tls_reply" in "SIP/2.0 200"*) tls_ok=yes ;; esac
wait "$hold" || true
sed 's/^/  /' "$work/hold.log"
echo "  a second client, during that: OPTIONS over TCP answered: $tcp_ok, over TLS: $tls_ok"
grep -iv 'connection refused' "$work/parley.log" | tail -n 5 | sed 's/^/  log: /' || true
