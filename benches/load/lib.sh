# Helpers of benches/load/run.sh (sourced; not run on its own): processes, wrk runs, /proc
# sampling, Markdown formatting. Every process started here is recorded in STARTED_PIDS so
# that the EXIT trap of run.sh stops exactly those.

STARTED_PIDS=()
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[load %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

# Stops every process this script started (TERM, then KILL after a grace), newest first.
stop_all() {
    local i pid
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${STARTED_PIDS[i]}
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${STARTED_PIDS[i]}
        wait_gone "$pid" 40 || kill -KILL "$pid" 2>/dev/null
    done
    STARTED_PIDS=()
}

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    return 0
}

# stop_pid PID: graceful stop of one started process; drops it from STARTED_PIDS.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait_gone "$1" 40 || { kill -KILL "$1" 2>/dev/null; wait_gone "$1" 5 || true; }
    forget_pid "$1"
}

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ensure_wrk: installs wrk from the Debian archive if it is missing.
ensure_wrk() {
    command -v wrk >/dev/null && return 0
    log "wrk not found; installing it with apt-get"
    command -v apt-get >/dev/null || die "wrk is missing and apt-get is not available; install wrk"
    apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; } ||
        die "could not install wrk"
}

# start_server NAME LOGFILE CMD...: starts CMD pinned to SERVER_CORE; sets SERVER_PID.
# setsid, taskset and nice exec the command (a background job of a script is no process group
# leader, so setsid does not fork): the PID is the server's own, and /proc/PID is its.
start_server() {
    local name=$1 logfile=$2
    shift 2
    setsid taskset -c "$SERVER_CORE" nice -n "$NICE" "$@" >"$logfile" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    boost "$SERVER_PID"
    log "$name started (pid $SERVER_PID, core $SERVER_CORE)"
}

# boost PID: gives PID's session (its own, from setsid) the scheduling weight of nice NICE.
# With autogroup scheduling (the default on desktop and many server kernels), CPU time is
# shared fairly between sessions first, and a process's own nice only counts inside its
# session: so a build in another session would take half of the measured core whatever
# `nice` says. Writing /proc/PID/autogroup (root) raises the whole session's weight.
boost() {
    local file=/proc/$1/autogroup
    [[ $NICE != 0 && -w $file ]] && { echo "$NICE" >"$file"; } 2>/dev/null
    return 0
}

# forget_pid PID: drops an exited process from STARTED_PIDS.
forget_pid() {
    local kept=() p
    for p in "${STARTED_PIDS[@]}"; do [[ $p != "$1" ]] && kept+=("$p"); done
    STARTED_PIDS=("${kept[@]}")
}

# update_child_cpu: sets CHILD_CPU to the user + system seconds of every child this shell has
# reaped so far. `times` must run in this shell, not in a $(...) subshell: hence a variable.
CHILD_CPU=0
update_child_cpu() {
    times >"$WORK/times"
    CHILD_CPU=$(awk 'NR == 2 {
        n = split($0, f, " "); t = 0
        for (i = 1; i <= n; i++) { split(f[i], p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        print t }' "$WORK/times")
}

# wait_ready URL PID SECONDS [START_NS]: polls URL every 10 ms until it answers 200; prints
# the milliseconds since START_NS (default: the call).
wait_ready() {
    local url=$1 pid=$2 limit=$3 start=${4:-$(date +%s%N)} now
    while true; do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) == 200 ]]; then
            now=$(date +%s%N)
            echo $(((now - start) / 1000000))
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "server pid $pid exited before $url answered"
        now=$(date +%s%N)
        (((now - start) / 1000000000 >= limit)) && die "$url not ready after $limit s"
        sleep 0.01
    done
}

# rss_kb PID: resident set size now, in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# table_kb PORT: heap KiB of the embedded store's in-memory tables (the sum of
# banditd_store_table_bytes over its tables; 0 on Redis or when /metrics cannot be read).
table_kb() {
    curl -fs "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk '/^banditd_store_table_bytes/ {s += $2} END {printf "%d", s / 1024}'
}

# written_bytes PID: bytes the process caused to be sent to the block device so far
# (/proc/PID/io write_bytes; needs root or the same user), 0 if unreadable.
written_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }

# cpu_ticks PID: user + system CPU time so far, in clock ticks (all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run_wrk OUTFILE URL DURATION_S CONNECTIONS [wrk options...] -- SCRIPT_ARGS...
# Runs wrk pinned to CLIENT_CORE against URL with the scenario script; fills the global
# associative array R with the RESULT fields plus rps, server_cpu (% of one core, of
# SERVER_PID), client_cpu (% of one core) and rss_mb (SERVER_PID, at the end).
declare -A R
run_wrk() {
    local out=$1 url=$2 duration=$3 conns=$4
    shift 4
    local opts=()
    while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
    (($#)) && shift
    local script=${WRK_SCRIPT:-$LUA_DIR/load.lua}
    local ticks_before ticks_after written_before
    ticks_before=$(cpu_ticks "$SERVER_PID")
    written_before=$(written_bytes "$SERVER_PID")
    local cpu_before wrk_pid
    update_child_cpu
    cpu_before=$CHILD_CPU
    # In the background and waited for, so that Ctrl-C reaches the trap at once.
    setsid taskset -c "$CLIENT_CORE" nice -n "$NICE" wrk -t1 -c"$conns" -d"${duration}s" \
        --timeout 10s "${opts[@]}" -s "$script" "$url" -- threads=1 "$@" >"$out" 2>&1 &
    wrk_pid=$!
    STARTED_PIDS+=("$wrk_pid")
    boost "$wrk_pid"
    wait "$wrk_pid" || die "wrk failed; see $out"
    forget_pid "$wrk_pid"
    ticks_after=$(cpu_ticks "$SERVER_PID")
    WRITTEN_BYTES=$(($(written_bytes "$SERVER_PID") - written_before))
    update_child_cpu
    parse_result "$out" "$((ticks_after - ticks_before))" \
        "$(awk -v a="$cpu_before" -v b="$CHILD_CPU" 'BEGIN {print b - a}')"
}

# parse_result OUTFILE SERVER_TICKS CLIENT_CPU_SECONDS: fills R from wrk's RESULT line.
parse_result() {
    local out=$1 ticks=$2 client_secs=$3 line field secs
    R=()
    line=$(grep '^RESULT ' "$out" | tail -1) || die "wrk printed no RESULT line; see $out"
    for field in ${line#RESULT }; do R[${field%%=*}]=${field#*=}; done
    secs=$(awk -v us="${R[duration_us]}" 'BEGIN {printf "%.6f", us / 1e6}')
    R[rps]=$(awk -v n="${R[requests]}" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
    R[events_per_s]=$(awk -v n="${R[applied]}" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
    R[server_cpu]=$(awk -v d="$ticks" -v hz="$CLK_TCK" -v s="$secs" \
        'BEGIN {printf "%.0f", 100 * d / hz / s}')
    R[client_cpu]=$(awk -v c="$client_secs" -v s="$secs" \
        'BEGIN {if (c == "") print "–"; else printf "%.0f", 100 * c / s}')
    R[rss_mb]=$(awk -v kb="$(rss_kb "$SERVER_PID")" 'BEGIN {printf "%.0f", kb / 1024}')
    R[errors]=$((R[non2xx] + R[socket_errors] + R[timeouts]))
    # Per applied event: server CPU (all threads, independent of how busy the machine is as
    # long as the server is not starved) and bytes written to the device.
    R[cpu_us_per_event]=$(awk -v d="$ticks" -v hz="$CLK_TCK" -v n="${R[applied]}" \
        'BEGIN {if (n > 0) printf "%.1f", 1e6 * d / hz / n; else print "–"}')
    R[bytes_per_event]=$(awk -v b="${WRITTEN_BYTES:-0}" -v n="${R[applied]}" \
        'BEGIN {if (n > 0) printf "%.0f", b / n; else print "–"}')
}

# ms MICROSECONDS: formats a latency in milliseconds.
ms() { awk -v us="$1" 'BEGIN {printf (us < 10000 ? "%.2f" : "%.0f"), us / 1000}'; }

# ratio A B: A / B with two decimals ("–" if B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "–"}'; }

# thousands N: 1234567 -> 1,234,567.
thousands() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }

# verdict OK: "pass" or "**MISS**".
verdict() { if [[ $1 == 1 ]]; then echo "pass"; else echo "**MISS**"; fi; }

# at_least A B / at_most A B: 1 if the comparison holds (floating point).
at_least() { awk -v a="$1" -v b="$2" 'BEGIN {print (a >= b) ? 1 : 0}'; }
at_most() { awk -v a="$1" -v b="$2" 'BEGIN {print (a <= b) ? 1 : 0}'; }

# make_work NAME: a fresh temp dir in WORK for one bench script; on exit every process the
# script started is stopped and the dir removed (KEEP_WORK=1 keeps it); Ctrl-C exits 130.
make_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-$1.XXXXXX")
    trap cleanup_work EXIT
    trap 'log "interrupted"; exit 130' INT TERM
}
cleanup_work() {
    stop_all
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# start_aof_redis DIR PORT [PREFIX...]: a redis-server on PORT with its files in DIR (created),
# appendonly yes and appendfsync always (the durability banditd's Redis figures are for), no
# RDB; PREFIX (e.g. `taskset -c 1 nice -n -10`) runs before it. Waits for PONG (20 s), records
# the pid in STARTED_PIDS (so it is stopped on exit) and in AOF_REDIS_PID. Not in a command
# substitution: the pid must reach this shell's STARTED_PIDS.
start_aof_redis() {
    local dir=$1 port=$2
    shift 2
    command -v redis-server >/dev/null || die "needs redis-server (apt-get install -y redis-server)"
    port_free "$port" || die "port $port is in use; set REDIS_PORT"
    mkdir -p "$dir"
    setsid "$@" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --appendonly yes --appendfsync always --save '' --daemonize no \
        --logfile "$dir/redis.log" >/dev/null 2>&1 &
    AOF_REDIS_PID=$!
    STARTED_PIDS+=("$AOF_REDIS_PID")
    local deadline=$((SECONDS + 20))
    until [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; do
        ((SECONDS < deadline)) || die "redis-server on port $port did not answer within 20 s"
        sleep 0.05
    done
}
