#!/usr/bin/env bash
# The new-unit round on Redis, commit by commit: runs the assign_new scenario of run.sh (wrk,
# 64 connections, one new unit per request) against one banditd --redis, pinned as run.sh pins
# them (banditd on core 0, redis-server and wrk on core 1, appendfsync always), with the
# store's commit timeline on (src/store/redis/timeline.rs), and summarises it with
# benches/load/redis_timeline.py: commits per second, commands per commit, and where a
# commit's round goes (queue, gather, build, Redis, answers, idle). Per run also banditd's and
# redis-server's CPU µs per new unit (from /proc and INFO cpu), script calls and fdatasync
# calls per new unit (INFO commandstats and persistence), the p50/p99 of wrk and the load
# average, so runs on a busy machine can still be compared by their CPU and counts.
#
#   benches/load/redis_timeline.sh [--bin PATH] [--rounds N] [--seconds S]
#
# Each round runs against a fresh redis-server and banditd. --bin defaults to $CARGO_TARGET_DIR/release/banditd (build it first:
# cargo build --release --bin banditd). Environment: REDIS_PORT (18893), BANDITD_PORT
# (18894), KEEP_WORK=1 keeps the temp dir with the timelines and wrk outputs.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"

ROUNDS=3
SECONDS_PER_RUN=5
BIN=
while (($#)); do
    case $1 in
    --bin) BIN=${2:?--bin needs a path}; shift ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
    --seconds) SECONDS_PER_RUN=${2:?--seconds needs a number}; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=${BIN:-$TARGET/release/banditd}
[[ -x $BIN ]] || die "$BIN is missing; build it (cargo build --release --bin banditd)"
command -v redis-server >/dev/null || die "needs redis-server (apt-get install -y redis-server)"
command -v python3 >/dev/null || die "needs python3"
ensure_wrk
REDIS_PORT=${REDIS_PORT:-18893}
BANDITD_PORT=${BANDITD_PORT:-18894}
if [[ $(id -u) == 0 ]]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi
SERVER_CORE=0
CLIENT_CORE=1
LUA=$HERE/lua/load.lua

WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-redis-timeline.XXXXXX")
cleanup() {
    stop_all
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

rcli() { redis-cli -p "$REDIS_PORT" "$@" | tr -d '\r'; }
redis_cpu() { rcli info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.6f", s}'; }
# Script calls: the apply library's FCALLs (EVALSHAs on a Redis without Functions) and the
# single-purpose scripts' EVALSHAs.
evalsha_calls() { rcli info commandstats | awk -F'[=,:]' '/^cmdstat_(evalsha|fcall):/ {s += $3} END {print s + 0}'; }

# one_run TAG: a fresh redis-server and banditd; warm-up, then the measured wrk run.
one_run() {
    local tag=$1 dir="$WORK/$1"
    mkdir -p "$dir/redis"
    port_free "$REDIS_PORT" && port_free "$BANDITD_PORT" || die "port $REDIS_PORT or $BANDITD_PORT is in use"
    setsid taskset -c "$CLIENT_CORE" nice -n "$NICE" redis-server --port "$REDIS_PORT" \
        --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --appendfsync always --save '' \
        --maxmemory-policy noeviction --daemonize no --logfile "$dir/redis/redis.log" &
    local redis_pid=$!
    STARTED_PIDS+=("$redis_pid")
    boost "$redis_pid"
    until [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do sleep 0.05; done
    BANDITD_REDIS_TIMELINE=$dir/timeline.txt \
        start_server banditd "$dir/banditd.log" "$BIN" serve --bind "127.0.0.1:$BANDITD_PORT" \
        --redis "redis://127.0.0.1:$REDIS_PORT" --data-dir "$dir/unused" \
        --experiments "$HERE/experiments" --workers 1 --access-log off
    local banditd_pid=$SERVER_PID
    until curl -sf "http://127.0.0.1:$BANDITD_PORT/readyz" >/dev/null; do
        kill -0 "$banditd_pid" 2>/dev/null || die "banditd exited; see $dir/banditd.log"
        sleep 0.1
    done
    taskset -c "$CLIENT_CORE" wrk -t1 -c64 -d2s -s "$LUA" "http://127.0.0.1:$BANDITD_PORT" \
        -- threads=1 scenario=assign_new "run=w$tag" >/dev/null
    local load ticks0 ticks1 rcpu0 rcpu1 calls0 calls1
    load=$(cut -d' ' -f1 /proc/loadavg)
    ticks0=$(cpu_ticks "$banditd_pid") rcpu0=$(redis_cpu) calls0=$(evalsha_calls)
    # Lines of the warm-up (the file is written every 256 commits: a few may count as measured).
    local lines0
    lines0=$(wc -l <"$dir/timeline.txt" 2>/dev/null || echo 0)
    setsid taskset -c "$CLIENT_CORE" nice -n "$NICE" wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" \
        --timeout 10s -s "$LUA" "http://127.0.0.1:$BANDITD_PORT" \
        -- threads=1 scenario=assign_new "run=m$tag" >"$dir/wrk.out" 2>&1 &
    local wrk_pid=$!
    STARTED_PIDS+=("$wrk_pid")
    boost "$wrk_pid"
    wait "$wrk_pid" || die "wrk failed; see $dir/wrk.out"
    forget_pid "$wrk_pid"
    ticks1=$(cpu_ticks "$banditd_pid") rcpu1=$(redis_cpu) calls1=$(evalsha_calls)
    stop_pid "$banditd_pid"
    stop_pid "$redis_pid"
    local result requests
    result=$(grep '^RESULT ' "$dir/wrk.out") || die "no RESULT in $dir/wrk.out"
    requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$result")
    ((requests > 0)) || die "no requests in $dir/wrk.out"
    grep -q 'non2xx=0 ' <<<"$result" || die "non-2xx answers: $result"
    awk -v r="$requests" -v d="$SECONDS_PER_RUN" -v t0="$ticks0" -v t1="$ticks1" -v hz="$CLK_TCK" \
        -v c0="$rcpu0" -v c1="$rcpu1" -v s0="$calls0" -v s1="$calls1" -v res="$result" \
        -v tag="$tag" -v load="$load" 'BEGIN {
            split(res, kv, " "); for (i in kv) { split(kv[i], p, "="); v[p[1]] = p[2] }
            printf "| %s | %.0f | %.2f | %.1f | %.1f | %.1f | %.1f | %s |\n", tag,
                r / d, v["p50_us"] / 1000, v["p99_us"] / 1000, (t1 - t0) / hz * 1e6 / r,
                (c1 - c0) * 1e6 / r, r / (s1 - s0), load }' >>"$WORK/rows.md"
    tail -n +"$((lines0 + 1))" "$dir/timeline.txt" >"$dir/timeline-measured.txt"
    {
        echo "### $tag"
        echo '```'
        python3 "$HERE/redis_timeline.py" "$dir/timeline-measured.txt"
        echo '```'
    } >>"$WORK/timelines.md"
    log "$tag done: $(tail -1 "$WORK/rows.md")"
}

for ((round = 1; round <= ROUNDS; round++)); do
    one_run "r$round"
done
echo "| run | new units/s | p50 ms | p99 ms | banditd CPU µs/unit | Redis CPU µs/unit | units per script call | load |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
cat "$WORK/rows.md"
echo
cat "$WORK/timelines.md"
