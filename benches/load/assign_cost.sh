#!/usr/bin/env bash
# Exact user-space cost of one assign request: instructions per request counted by callgrind,
# for the known-unit path, the per-request path and the bare actix-web baseline:
#
#   benches/load/assign_cost.sh BIN_DIR [COUNT]
#
# BIN_DIR holds a release `banditd` and `banditd-baseline` (`cargo build --release --bins`).
# Timings on a shared machine are noise, and this VM has no hardware counters; callgrind counts
# every instruction the server executes in user space (not the kernel's TCP work, which the
# baseline pays alike), the same on a loaded machine as on a quiet one.
#
# Each server runs under `valgrind --tool=callgrind` (one worker, `--access-log off`, a fresh
# data dir with benches/load/experiments, as benches/load/hot_ab.sh). A sequential client
# (benches/load/assign_requests.py, one keep-alive connection) first makes KNOWN (1,000) known
# units and sends WARM (300) requests of each scenario uncounted (lazy initialisation, caches,
# the allocator's pools); then, per scenario, the counters are zeroed (`callgrind_control -z`),
# COUNT (2,000) requests are sent and the counters dumped (`callgrind_control -d`), one dump
# per thread (`--separate-threads=yes`): the totals add every thread (the store's writer works
# for the per-request exposures), and the HTTP worker (the thread that ran actix's dispatcher)
# is reported apart. The process's background work with no requests (timers, sled's flusher)
# is counted over IDLE_S (5) s and reported as instructions per second, so that its share of a
# scenario (run time × that rate) can be judged; it is not subtracted.
#
# Output (Markdown on stdout, logs on stderr): instructions per request per scenario, the run's
# wall time, and per scenario the named parts of benches/load/callgrind_parts.py (inclusive
# instructions per request and calls per request: the request span, the route table, the
# token and its SHA-256 blocks, the answer, the store's writer thread, allocations...). Two
# parts are not the request's own and are also reported subtracted: the SHA-256 blocks
# (valgrind does not run the SHA-NI instructions, so the sha2 crate takes its portable path,
# ~3,500 instructions a block; natively, on a CPU with SHA-NI, it runs those instead) and
# the posterior refresh (`Engine::rebuild`, once per 100 ms on the first request after; under
# valgrind's slowdown a run of COUNT requests takes seconds and holds dozens of refreshes).
# REDIS=1 serves banditd from Redis instead of sled: a fresh redis-server (appendonly yes,
# appendfsync always, as benches/load/hot_ab.sh) on REDIS_PORT (18479), not under valgrind;
# only banditd's own instructions are counted.
# TOP (0) > 0 also lists the TOP functions by inclusive instructions per request
# (`callgrind_annotate --inclusive=yes`). KEEP_WORK=1 keeps the dumps (open them with
# `callgrind_annotate --inclusive=yes --tree=calling FILE` or kcachegrind).
# Valgrind makes the server far slower: COUNT=2000 takes from a few seconds to a minute per
# scenario, with the machine's load.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/callgrind.sh
source "$HERE/callgrind.sh"

BIN=${1:?usage: assign_cost.sh BIN_DIR [COUNT]}
COUNT=${2:-2000}
KNOWN=${KNOWN:-1000}
WARM=${WARM:-300}
IDLE_S=${IDLE_S:-5}
TOP=${TOP:-0}
PORT=${BANDITD_PORT:-18280}
SERVER_CORE=${SERVER_CORE:-0}
NICE=${NICE:-0}
REDIS=${REDIS:-0}
REDIS_PORT=${REDIS_PORT:-18479}
for bin in "$BIN/banditd" "$BIN/banditd-baseline"; do
    [[ -x $bin ]] || die "$bin is missing"
done
command -v valgrind >/dev/null || die "needs valgrind (apt-get install -y valgrind)"
command -v callgrind_control >/dev/null || die "needs callgrind_control (valgrind)"

make_work assign-cost
cp -r "$HERE/experiments" "$WORK/experiments"
DRIVER=(python3 "$HERE/assign_requests.py" "$PORT")

# instructions FILES: the dumps' total Ir (FILES joined by commas).
instructions() {
    local file total=0
    for file in ${1//,/ }; do
        total=$((total + $(awk '/^(summary|totals):/ {print $2; exit}' "$file")))
    done
    echo "$total"
}

# worker FILES: the dump of the HTTP worker thread (the one that ran actix's dispatcher).
worker() {
    local file
    for file in ${1//,/ }; do
        grep -q 'InnerDispatcher' "$file" && { echo "$file"; return; }
    done
    echo "${1%%,*}"
}

# measure NAME SCENARIO: COUNT requests of SCENARIO, counted; prints "DUMPS SECONDS".
measure() {
    local name=$1 scenario=$2 t0 t1
    "${DRIVER[@]}" "$scenario" "$WARM" "$KNOWN" || die "$scenario warm-up failed"
    callgrind_control -z "$SERVER_PID" >/dev/null
    t0=$(date +%s.%N)
    "${DRIVER[@]}" "$scenario" "$COUNT" "$KNOWN" || die "$scenario failed"
    t1=$(date +%s.%N)
    echo "$(dump "$name" "counted-$scenario") $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
}

# idle NAME: prints the instructions per second of NAME's process with no requests.
idle() {
    local file
    callgrind_control -z "$SERVER_PID" >/dev/null
    sleep "$IDLE_S"
    file=$(dump "$1" idle-period)
    awk -v n="$(instructions "$file")" -v s="$IDLE_S" 'BEGIN {printf "%.0f", n / s}'
}

declare -A FILE_OF SECONDS_OF
STORE=()
if ((REDIS)); then
    start_aof_redis "$WORK/redis" "$REDIS_PORT"
    STORE=(--redis "redis://127.0.0.1:$REDIS_PORT")
fi
under_callgrind banditd 300 "$BIN/banditd" serve --bind "127.0.0.1:$PORT" \
    --data-dir "$WORK/data" --experiments "$WORK/experiments" --workers 1 --access-log off \
    "${STORE[@]}"
log "making $KNOWN known units"
"${DRIVER[@]}" warm "$KNOWN" || die "the warm-up failed"
for scenario in assign_known per_request; do
    log "banditd: $scenario, $COUNT requests"
    read -r FILE_OF[$scenario] SECONDS_OF[$scenario] < <(measure banditd "$scenario")
done
log "banditd: idle for $IDLE_S s"
IDLE_BANDITD=$(idle banditd)
stop_pid "$SERVER_PID"

under_callgrind baseline 300 "$BIN/banditd-baseline" --bind "127.0.0.1:$PORT" --workers 1
log "baseline: $COUNT requests"
read -r FILE_OF[baseline] SECONDS_OF[baseline] < <(measure baseline baseline)
log "baseline: idle for $IDLE_S s"
IDLE_BASELINE=$(idle baseline)
stop_pid "$SERVER_PID"

per_request() { awk -v n="$(instructions "$1")" -v c="$COUNT" 'BEGIN {printf "%.0f", n / c}'; }

# inclusive FILE PATTERN: inclusive instructions of the function matching PATTERN, per request
# (0 when it did not run).
inclusive() {
    (cd / && callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null) |
        { grep -E "$2" || true; } | head -1 |
        awk -v c="$COUNT" '{ir = $1; gsub(",", "", ir)} END {printf "%.0f", (NR ? ir : 0) / c}'
}

cat <<EOF
# Instructions per assign request (callgrind, user space)

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $COUNT counted requests per scenario after $WARM
  uncounted; $KNOWN known units; one worker, \`--access-log off\`; one keep-alive connection.
- banditd: $BIN/banditd; baseline: $BIN/banditd-baseline
- Store: $( ((REDIS)) && echo "Redis (redis-server on port $REDIS_PORT, appendfsync always; not counted)" || echo sled)
- Idle (no requests, every thread): banditd $(thousands "$IDLE_BANDITD") instructions/s,
  baseline $(thousands "$IDLE_BASELINE") instructions/s.
- "Without SHA and refresh": the total less the SHA-256 blocks (portable code under valgrind)
  and the posterior refresh (by the clock, not per request); see the script's header.

| scenario | server | instructions per request (all threads) | HTTP worker thread | worker without SHA and refresh | run time (s) | idle share (run time × idle rate ÷ total) |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
EOF
for scenario in assign_known per_request baseline; do
    server=banditd idle_rate=$IDLE_BANDITD
    [[ $scenario == baseline ]] && server=banditd-baseline idle_rate=$IDLE_BASELINE
    file=${FILE_OF[$scenario]}
    total=$(per_request "$file")
    on_worker=$(per_request "$(worker "$file")")
    sha=$(inclusive "$(worker "$file")" 'sha2::sha256::compress256 \[')
    refresh=$(inclusive "$(worker "$file")" 'Engine>::rebuild::\{\{closure\}\} \[')
    echo "| $scenario | $server | $(thousands "$total") | $(thousands "$on_worker") | $(thousands "$((on_worker - sha - refresh))") | ${SECONDS_OF[$scenario]} | $(awk \
        -v r="$idle_rate" -v s="${SECONDS_OF[$scenario]}" -v n="$(instructions "$file")" \
        'BEGIN {printf "%.1f%%", 100 * r * s / n}') |"
done
for scenario in assign_known per_request baseline; do
    cat <<EOF

### $scenario: parts (inclusive instructions per request; parts overlap)

| part | instructions per request | calls per request |
| --- | ---: | ---: |
$(python3 "$HERE/callgrind_parts.py" "${FILE_OF[$scenario]}" "$COUNT")
EOF
    if ((TOP > 0)); then
        cat <<EOF

| Ir per request | function (top $TOP on the HTTP worker, inclusive) |
| ---: | --- |
$(top "$(worker "${FILE_OF[$scenario]}")" "$COUNT" "$TOP")
EOF
    fi
done
