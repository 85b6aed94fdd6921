# Shared by the load scripts: server CPU accounting and SIPp runs at rising
# rates. Sourced, not run. Expects $work, $SECONDS_PER_RATE and $RATES.

# CPU ticks (utime + stime) of a process and its child processes.
ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}

# Runs a SIPp client scenario at a rate (over $TRANSPORT: u1 or t1, default
# u1); prints "successful failed retransmissions".
# Usage: run_sipp SCENARIO PORT RATE CALLS
run_sipp() {
  local scenario=$1 port=$2 rate=$3 calls=$4 stats="$work/stats-$2-$3.csv"
  rm -f "$stats"
  timeout $((SECONDS_PER_RATE + 20)) sipp -sf "$scenario" -t "${TRANSPORT:-u1}" -i 127.0.0.1 -p 0 \
    -r "$rate" -m "$calls" -nostdin -timeout $((SECONDS_PER_RATE + 15))s -buff_size 1048576 \
    -trace_stat -stf "$stats" -fd 1 127.0.0.1:"$port" >/dev/null 2>&1 || true
  awk -F';' 'NR==1 { for (i=1;i<=NF;i++) { if ($i=="SuccessfulCall(C)") s=i; if ($i=="FailedCall(C)") f=i; if ($i=="Retransmissions(C)") r=i } }
             END { print $s+0, $f+0, $r+0 }' "$stats"
}

# The highest rate of $RATES held with < 0.1 % failures and no retransmissions.
# A rate gets $TRIES runs (default 2) and counts as held when one of them is
# clean, so one stray retransmission does not decide the figure.
# Usage: max_rate SCENARIO PORT
max_rate() {
  local scenario=$1 port=$2 best=0 rate ok fail retr calls try held
  for rate in $RATES; do
    calls=$((rate * SECONDS_PER_RATE))
    held=no
    for try in $(seq "${TRIES:-2}"); do
      read -r ok fail retr < <(run_sipp "$scenario" "$port" "$rate" "$calls")
      if [ "$retr" -eq 0 ] && [ $((fail * 1000)) -lt "$calls" ] && [ "$ok" -ge $((calls * 999 / 1000)) ]; then
        held=yes
        break
      fi
    done
    [ "$held" = yes ] || break
    best=$rate
  done
  echo "$best"
}

# Microseconds of server CPU per successful call at $FIXED_RATE, over
# $CPU_SECONDS (default 10: the clock tick is 10 ms, so a longer window
# measures finer).
# Usage: cpu_per_request SCENARIO PORT PID
cpu_per_request() {
  local scenario=$1 port=$2 pid=$3 seconds=${CPU_SECONDS:-10} calls before after ok hz
  calls=$((FIXED_RATE * seconds))
  before=$(ticks "$pid")
  read -r ok _ _ < <(SECONDS_PER_RATE=$seconds run_sipp "$scenario" "$port" "$FIXED_RATE" "$calls")
  after=$(ticks "$pid")
  hz=$(getconf CLK_TCK)
  awk -v d=$((after - before)) -v hz="$hz" -v n="$ok" 'BEGIN { if (n > 0) printf "%.1f", d * 1000000 / hz / n; else print "nan" }'
}

# Prints the table and the ratios.
# Usage: report WHAT P_MAX P_CPU K_MAX K_CPU
report() {
  printf '%-10s %22s %26s\n' server "max clean rate ($1/s)" "CPU per request at ${FIXED_RATE}/s"
  printf '%-10s %22s %24s us\n' parley "$2" "$3"
  printf '%-10s %22s %24s us\n' kamailio "$4" "$5"
  awk -v pm="$2" -v km="$4" -v pc="$3" -v kc="$5" 'BEGIN {
    printf "ratio parley/kamailio: rate %.2fx, CPU per request %.2fx less\n", (km > 0 ? pm / km : 0), (pc > 0 ? kc / pc : 0) }'
}

# Writes $work/parley.toml (the TOML given on stdin, then UDP and TCP on
# 127.0.0.1:PORT and warnings only), provisions the users named in
# $PARLEY_USERS (password "load") before the server opens the database,
# and starts Parley with it; sets parley_pid.
# Usage: [PARLEY_USERS="bob@localhost"] start_parley PORT <<TOML ... TOML
start_parley() {
  {
    echo "state_dir = \"$work/var\""
    cat
    cat <<TOML
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:$1"
[[sip.listen]]
transport = "tcp"
address = "127.0.0.1:$1"
[admin]
enabled = false
[log]
level = "${PARLEY_LOG:-warn}"
TOML
  } > "$work/parley.toml"
  local user
  for user in ${PARLEY_USERS:-}; do
    target/release/parley user add "$user" --password load --config "$work/parley.toml" >/dev/null
  done
  target/release/parley run --config "$work/parley.toml" > "$work/parley.log" 2>&1 &
  parley_pid=$!
}

# Starts Kamailio in the foreground from a template under tests/data/kamailio
# on UDP (and TCP) port PORT with $KAM_CHILDREN children (default 2) and 2 GB
# of shared memory; DBFILE in the template becomes $work/kamailio.db; sets
# kam_pid. Usage: start_kamailio TEMPLATE PORT
start_kamailio() {
  local mpath
  mpath=$(kamailio_modules)/
  sed -e "s|PORT|$2|g" -e "s|MPATH|$mpath|" -e "s|DBFILE|$work/kamailio.db|g" "tests/data/kamailio/$1" > "$work/kamailio.cfg"
  mkdir -p "$work/kam"
  kamailio -DD -E -f "$work/kamailio.cfg" -n "${KAM_CHILDREN:-2}" -m 2048 -Y "$work/kam" -P "$work/kam/pid" -w "$work/kam" > "$work/kamailio.log" 2>&1 &
  kam_pid=$!
}

# The directory of Kamailio's modules.
kamailio_modules() {
  dirname "$(find /usr/lib -name sl.so -path '*kamailio*' | head -n1)"
}

install_load_peers() {
  bash tests/peers/install.sh >/dev/null
  # ss (iproute2) waits for listeners; pgrep (procps) finds Kamailio's workers.
  command -v ss >/dev/null && command -v pgrep >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 procps >/dev/null
  }
}

# Resident memory of a process in KiB.
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Waits (at most 30 s) until something listens on UDP 127.0.0.1:PORT.
wait_udp() {
  local i
  for i in $(seq 150); do
    ss -lun 2>/dev/null | grep -q "127.0.0.1:$1 " && return 0
    sleep 0.2
  done
  echo "nothing listens on udp $1" >&2
  return 1
}

# A SIPp user agent server for MESSAGE on UDP PORT, registered as bob at
# the registrar on UDP SERVER (without authentication: the load configs
# turn it off for Parley and Kamailio alike).
# Usage: message_uas PORT SERVER
message_uas() {
  local port=$1 server=$2
  timeout 3600 sipp -sf tests/data/sipp/uas_message.xml -t u1 -i 127.0.0.1 -p "$port" \
    -m 100000000 -nostdin -buff_size 1048576 >/dev/null 2>&1 &
  sleep 0.5
  sipp -sf tests/data/sipp/register_contact.xml -t u1 -i 127.0.0.1 -p 0 -s bob \
    -key uas_port "$port" -key domain localhost -m 1 -nostdin -timeout 10s 127.0.0.1:"$server" >/dev/null 2>&1 \
    || { echo "registering bob at $server failed"; exit 1; }
}
