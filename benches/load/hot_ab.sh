#!/usr/bin/env bash
# A/B of two banditd builds on the assign paths, alternated with the bare actix-web baseline in
# one run, so that a shared machine's drift hits all three alike:
#
#   benches/load/hot_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]
#
# Each *_BIN_DIR holds a release `banditd`; the baseline is NEW_BIN_DIR/banditd-baseline. Both
# banditd servers run at once on core SERVER_CORE (0), each on a fresh data dir with the same
# KNOWN_UNITS (10,000) warmed up, one worker, `--access-log ACCESS_LOG` (default `off`, as
# benches/load/run.sh; `all` measures the default setting's line per request); only
# the one under load is busy. Per round and scenario (assign_known, per_request): baseline,
# old, new, baseline again, DURATION (5) s each, wrk on CLIENT_CORE (1) with CONNECTIONS (64).
# Reported: every run's req/s and server CPU µs per request (all threads, from
# /proc/PID/task/*/schedstat: a server starved of its core serves fewer requests, but each still
# costs what it costs), ratios to the mean of the two baseline runs, and per scenario the median
# and range over the rounds of both, and of the baseline's CPU per request ÷ banditd's. PERF=1
# also profiles old and new during one extra assign_known run each (twice as long; perf record,
# DWARF stacks) and prints the share of samples in the request layers. REDIS=1 serves old and new
# from Redis instead of sled: one redis-server each (appendonly yes, appendfsync always, pinned to
# REDIS_CORE (1), which wrk shares, as in benches/load/redis.sh), on ports REDIS_PORT (18379) and
# REDIS_PORT + 1.
# SCENARIOS (default "assign_known per_request"; also assign_new: a fresh sticky unit per
# request) picks the scenarios, PERF_SCENARIOS (default assign_known) the profiled ones.
# ALLOCS=1 also counts heap allocations per request (uprobes on mimalloc; see below).
# With REDIS=1 the Redis store thread's own CPU (thread `banditd-redis`: its commits, its
# probe and the posterior refresh's reads) is reported too, in µs per second of each run.
# Output: Markdown on stdout; logs on stderr.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LUA_DIR=$HERE/lua
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/phases.sh
source "$HERE/phases.sh"

OLD=${1:?usage: hot_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]}
NEW=${2:?usage: hot_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]}
ROUNDS=${3:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
if [[ $(id -u) == 0 ]]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi
KNOWN_UNITS=${KNOWN_UNITS:-10000}
ACCESS_LOG=${ACCESS_LOG:-off}
BASE_PORT=${BANDITD_PORT:-18180}
REDIS=${REDIS:-0}
SCENARIOS=${SCENARIOS:-assign_known per_request}
PERF_SCENARIOS=${PERF_SCENARIOS:-assign_known}
REDIS_PORT=${REDIS_PORT:-18379}
REDIS_CORE=${REDIS_CORE:-1}
for bin in "$OLD/banditd" "$NEW/banditd" "$NEW/banditd-baseline"; do
    [[ -x $bin ]] || die "$bin is missing"
done
ensure_wrk

WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-hot-ab.XXXXXX")
cleanup() {
    stop_all
    if [[ ${ALLOCS:-0} == 1 ]]; then perf probe -q -d 'probe_banditd:hotab_*' >/dev/null 2>&1 || true; fi
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
cp -r "$HERE/experiments" "$WORK/experiments"

# cpu_ns PID: CPU time of every thread of PID so far, in nanoseconds.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f", t}'; }

# thread_cpu_ns PID NAME: CPU time of PID's threads called NAME so far, in nanoseconds.
thread_cpu_ns() {
    local task
    for task in /proc/"$1"/task/*; do
        if [[ $(cat "$task/comm" 2>/dev/null) == "$2" ]]; then cat "$task/schedstat" 2>/dev/null || true; fi
    done | awk '{t += $1} END {printf "%.0f", t}'
}

# redis_for NAME PORT: a redis-server for NAME's banditd (REDIS=1); sets REDIS_URL. (Not in a
# command substitution: the server's pid must reach STARTED_PIDS, so that it is stopped.)
redis_for() {
    local name=$1 port=$2
    start_aof_redis "$WORK/redis-$name" "$port" taskset -c "$REDIS_CORE" nice -n "$NICE"
    REDIS_URL="redis://127.0.0.1:$port"
}

# start NAME BIN PORT [REDIS_PORT]: one banditd, warmed up; sets PID_OF[NAME].
declare -A PID_OF PORT_OF
start() {
    local name=$1 bin=$2 port=$3 store=()
    port_free "$port" || die "port $port is in use; set BANDITD_PORT"
    if ((REDIS)); then
        redis_for "$name" "$4"
        store=(--redis "$REDIS_URL")
    fi
    start_server "banditd ($name)" "$WORK/$name.log" "$bin" serve --bind "127.0.0.1:$port" \
        --data-dir "$WORK/data-$name" --experiments "$WORK/experiments" --workers 1 \
        --access-log "$ACCESS_LOG" "${store[@]}"
    PID_OF[$name]=$SERVER_PID
    PORT_OF[$name]=$port
    wait_ready "http://127.0.0.1:$port/readyz" "$SERVER_PID" 60 >/dev/null
    warm_up_at "$port" "$SERVER_PID"
}

start_server baseline "$WORK/baseline.log" "$NEW/banditd-baseline" \
    --bind "127.0.0.1:$((BASE_PORT + 2))" --workers 1
PID_OF[baseline]=$SERVER_PID
PORT_OF[baseline]=$((BASE_PORT + 2))
wait_ready "http://127.0.0.1:$((BASE_PORT + 2))/readyz" "$SERVER_PID" 30 >/dev/null
start old "$OLD/banditd" "$BASE_PORT" "$REDIS_PORT"
start new "$NEW/banditd" "$((BASE_PORT + 1))" "$((REDIS_PORT + 1))"

# one NAME SCENARIO TAG: one wrk run against NAME; prints "RPS CPU_US_PER_REQ
# STORE_THREAD_CPU_US_PER_S".
one() {
    local name=$1 scenario=$2 tag=$3 before after args store_before store_after
    case $scenario in
    assign_known) args=(scenario=assign_known known="$KNOWN_UNITS") ;;
    per_request) args=(scenario=per_request) ;;
    assign_new) args=(scenario=assign_new) ;;
    *) die "unknown scenario $scenario" ;;
    esac
    SERVER_PID=${PID_OF[$name]}
    before=$(cpu_ns "$SERVER_PID")
    store_before=$(thread_cpu_ns "$SERVER_PID" banditd-redis)
    run_wrk "$WORK/$tag.out" "http://127.0.0.1:${PORT_OF[$name]}" "$DURATION" "$CONNECTIONS" \
        -- "${args[@]}" run="$tag"
    after=$(cpu_ns "$SERVER_PID")
    store_after=$(thread_cpu_ns "$SERVER_PID" banditd-redis)
    ((R[errors] == 0)) || die "errors in run $tag; see $WORK/$tag.out"
    echo "${R[rps]} $(awk -v d="$((after - before))" -v n="${R[requests]}" \
        'BEGIN {printf "%.2f", (n > 0) ? d / n / 1000 : 0}') $(awk \
        -v d="$((store_after - store_before))" -v s="$DURATION" 'BEGIN {printf "%.0f", d / s / 1000}')"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
declare -A RATIOS CPUS CPU_RATIOS STORE
for ((round = 1; round <= ROUNDS; round++)); do
    for scenario in $SCENARIOS; do
        log "round $round/$ROUNDS, $scenario: baseline, old, new, baseline"
        read -r b1 b1_cpu _ < <(one baseline "$scenario" "$scenario-$round-b1")
        read -r o_rps o_cpu o_store < <(one old "$scenario" "$scenario-$round-old")
        read -r n_rps n_cpu n_store < <(one new "$scenario" "$scenario-$round-new")
        read -r b2 b2_cpu _ < <(one baseline "$scenario" "$scenario-$round-b2")
        STORE[$scenario-old]+="$o_store "
        STORE[$scenario-new]+="$n_store "
        o_ratio=$(awk -v x="$o_rps" -v a="$b1" -v b="$b2" 'BEGIN {printf "%.3f", x / ((a + b) / 2)}')
        n_ratio=$(awk -v x="$n_rps" -v a="$b1" -v b="$b2" 'BEGIN {printf "%.3f", x / ((a + b) / 2)}')
        RATIOS[$scenario-old]+="$o_ratio "
        RATIOS[$scenario-new]+="$n_ratio "
        CPUS[$scenario-old]+="$o_cpu "
        CPUS[$scenario-new]+="$n_cpu "
        b_cpu=$(awk -v a="$b1_cpu" -v b="$b2_cpu" 'BEGIN {printf "%.2f", (a + b) / 2}')
        CPUS[$scenario-baseline]+="$b_cpu "
        # Baseline CPU per request ÷ banditd's: the throughput ratio a dedicated core would
        # show, and far less disturbed by other work on the machine than req/s.
        CPU_RATIOS[$scenario-old]+="$(awk -v b="$b_cpu" -v x="$o_cpu" 'BEGIN {printf "%.3f", b / x}') "
        CPU_RATIOS[$scenario-new]+="$(awk -v b="$b_cpu" -v x="$n_cpu" 'BEGIN {printf "%.3f", b / x}') "
        ROWS+=("| $scenario | $round | $(thousands "$b1") | $(thousands "$o_rps") | $(thousands "$n_rps") | $(thousands "$b2") | $o_ratio | $n_ratio | $b_cpu | $o_cpu | $n_cpu |")
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# stats "X1 X2 ...": "median min–max" of the values.
stats() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{v[NR] = $1}
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f–%.3f\n", m, v[1], v[NR] }'
}

# ALLOCS=1: heap allocations per request, counted exactly (uprobes on mimalloc's entry points,
# which Rust's global allocator calls for every allocation), in one extra run of each scenario
# per build. Unlike CPU time, the count does not depend on what else the machine runs. The
# probes slow the server down; that run's req/s and CPU are not reported.
ALLOC_ROWS=()
if [[ ${ALLOCS:-0} == 1 ]]; then
    command -v perf >/dev/null || die "ALLOCS=1 needs perf (linux-perf) with uprobes"
    for name in old new; do
        bin=$OLD/banditd
        [[ $name == new ]] && bin=$NEW/banditd
        for fn in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
            perf probe -q -x "$bin" -a "hotab_${name}_$fn=$fn" >/dev/null 2>&1 ||
                die "cannot place a uprobe on $fn in $bin"
        done
    done
    for scenario in $SCENARIOS; do
        row="| $scenario"
        for name in old new; do
            perf stat -x, -e "probe_banditd:hotab_${name}_*" -p "${PID_OF[$name]}" \
                -o "$WORK/allocs-$scenario-$name.csv" >/dev/null 2>&1 &
            stat_pid=$!
            STARTED_PIDS+=("$stat_pid")
            sleep 0.5
            one "$name" "$scenario" "allocs-$scenario-$name" >/dev/null
            kill -INT "$stat_pid" 2>/dev/null || true
            wait "$stat_pid" 2>/dev/null || true
            forget_pid "$stat_pid"
            count=$(awk -F, '$3 ~ /probe_banditd/ {n += $1} END {print n + 0}' "$WORK/allocs-$scenario-$name.csv")
            row+=" | $(awk -v n="$count" -v r="${R[requests]}" 'BEGIN {printf "%.2f", (r > 0) ? n / r : 0}')"
        done
        ALLOC_ROWS+=("$row |")
    done
    perf probe -q -d 'probe_banditd:hotab_*' >/dev/null 2>&1 || true
fi

PROFILES=()
if [[ ${PERF:-0} == 1 ]]; then
    command -v perf >/dev/null || die "PERF=1 needs perf (linux-perf)"
    for perf_scenario in $PERF_SCENARIOS; do
    for name in old new; do
        perf record -F 999 --call-graph dwarf,8192 -p "${PID_OF[$name]}" \
            -o "$WORK/perf-$perf_scenario-$name.data" >/dev/null 2>&1 &
        perf_pid=$!
        STARTED_PIDS+=("$perf_pid")
        DURATION=$((DURATION * 2)) one "$name" "$perf_scenario" "perf-$perf_scenario-$name" >/dev/null
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        forget_pid "$perf_pid"
        # Inclusive share of the samples of the request layers and of the handler.
        PROFILES+=("#### $perf_scenario, $name: inclusive share of samples (children %, self %)"
            '```'
            "$(perf report -i "$WORK/perf-$perf_scenario-$name.data" --children --sort sym --stdio -g none \
                --percent-limit 0.3 2>/dev/null | grep -E '^ +[0-9]' |
                grep -E 'RecordRequests|Recorded|TracingLogger|TracingResponse|RequestSpan|request_span|Traced|LazyFields|on_request_(start|end)|RequestLayers|Layered|Echoed|EchoRequestId|require_utf8|no_store|check_query|match_pattern|RouteTable|template_of|ErrorHandlers|Uuid|getrandom|new_span|on_new_span|on_record|handler_service|assign_one|Engine>::assign|sign|serde_json::ser::to_vec|regex_automata|recognize|capture_match_info' |
                grep -v '(inlined)$' | cut -c1-150 | head -40)"
            '```')
    done
    done
fi

cat <<EOF
# assign paths ($SCENARIOS): old vs new build vs the bare baseline

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $ROUNDS rounds, $DURATION s per run, $CONNECTIONS connections
- Machine: $(nproc) cores; load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER
- old: $OLD/banditd; new: $NEW/banditd; baseline: $NEW/banditd-baseline
- Store: $( ((REDIS)) && echo "Redis (one redis-server per build on core $REDIS_CORE, appendfsync always)" || echo sled)
- Servers on core $SERVER_CORE, one worker each, \`--access-log $ACCESS_LOG\`; wrk on core $CLIENT_CORE;
  $(thousands "$KNOWN_UNITS") known units warmed up on each banditd. Ratio: req/s ÷ the mean of
  the baseline right before and right after. CPU: server CPU µs per request (all threads).

| scenario | round | baseline req/s | old req/s | new req/s | baseline again | old ratio | new ratio | baseline CPU µs/req | old CPU µs/req | new CPU µs/req |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${ROWS[@]}")

| scenario | build | req/s ratio to baseline, median (min–max) | CPU µs per request, median (min–max) | baseline CPU ÷ this CPU per request, median (min–max) |
| --- | --- | --- | --- | --- |
EOF
((ROUNDS > 0)) && for scenario in $SCENARIOS; do
    for build in old new; do
        read -r rm rr < <(stats "${RATIOS[$scenario-$build]}")
        read -r cm cr < <(stats "${CPUS[$scenario-$build]}")
        read -r qm qr < <(stats "${CPU_RATIOS[$scenario-$build]}")
        echo "| $scenario | $build | ${rm}× ($rr) | $cm ($cr) | ${qm}× ($qr) |"
    done
    read -r cm cr < <(stats "${CPUS[$scenario-baseline]}")
    echo "| $scenario | baseline | 1× | $cm ($cr) | 1× |"
done
if ((REDIS && ROUNDS > 0)); then
    echo
    echo "### The Redis store thread (banditd-redis): CPU µs per second of run, median (min–max)"
    echo
    echo "| scenario | old | new |"
    echo "| --- | ---: | ---: |"
    for scenario in $SCENARIOS; do
        read -r om or < <(stats "${STORE[$scenario-old]}")
        read -r nm nr < <(stats "${STORE[$scenario-new]}")
        echo "| $scenario | $om ($or) | $nm ($nr) |"
    done
fi
if ((${#ALLOC_ROWS[@]})); then
    echo
    echo "### Heap allocations per request (ALLOCS=1: one extra run per scenario and build, uprobes on mimalloc)"
    echo
    echo "| scenario | old | new |"
    echo "| --- | ---: | ---: |"
    printf '%s\n' "${ALLOC_ROWS[@]}"
fi
if ((${#PROFILES[@]})); then
    echo
    echo "### Profiles (one extra run of each of $PERF_SCENARIOS per build under perf; numbers of these runs not reported)"
    echo
    printf '%s\n' "${PROFILES[@]}"
fi
