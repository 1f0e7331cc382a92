#!/usr/bin/env bash
# A/B of two banditd builds on the durable write paths (new unit, one event per POST), alternated
# with the bare actix-web baseline in one run, with the group commit's own counters:
#
#   benches/load/commit_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]
#
# Each *_BIN_DIR holds a release `banditd`; the baseline and `banditd-fill` come from NEW_BIN_DIR.
# Both banditd servers run at once on core SERVER_CORE (0), each on a fresh data dir with
# EVENT_UNITS (300,000) pre-filled `ev-*` units and KNOWN_UNITS (1,000) warmed up, one worker,
# `--access-log off`; only the one under load is busy. Per round and scenario (assign_new,
# event_single): baseline, old, new, baseline again, DURATION (5) s each, wrk on CLIENT_CORE (1)
# with CONNECTIONS (64). Reported per banditd run, from /proc and the server's /metrics:
# req/s and its ratio to the mean of the two baseline runs; server CPU µs per request (all
# threads), split into the store writer thread, sled's `sled-io-*` threads and the rest (the
# HTTP worker); group commits per second and requests per commit
# (`banditd_store_commit_batch_size`); CPU µs per commit in the writer and in sled's threads;
# context switches per request (voluntary + involuntary, all threads) and sled's per commit.
# Output: Markdown on stdout; logs on stderr.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LUA_DIR=$HERE/lua
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/phases.sh
source "$HERE/phases.sh"

OLD=${1:?usage: commit_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]}
NEW=${2:?usage: commit_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]}
ROUNDS=${3:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
if [[ $(id -u) == 0 ]]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi
KNOWN_UNITS=${KNOWN_UNITS:-1000}
EVENT_UNITS=${EVENT_UNITS:-300000}
BASE_PORT=${BANDITD_PORT:-18280}
BIN=$NEW
for bin in "$OLD/banditd" "$NEW/banditd" "$NEW/banditd-baseline" "$NEW/banditd-fill"; do
    [[ -x $bin ]] || die "$bin is missing"
done
ensure_wrk

make_work commit-ab
cp -r "$HERE/experiments" "$WORK/experiments"
STICKY_YAML=$WORK/experiments/load-sticky.yaml

# threads_ns PID: CPU nanoseconds so far of the writer, of sled's threads and of the rest.
threads_ns() {
    local task comm ns w=0 s=0 o=0
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        ns=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null) || continue
        case $comm in
        banditd-store-w*) w=$((w + ns)) ;;
        sled-io-*) s=$((s + ns)) ;;
        *) o=$((o + ns)) ;;
        esac
    done
    echo "$w $s $o"
}
# switches PID: voluntary + involuntary context switches so far of every live thread, and of
# sled's threads alone.
switches() {
    local task comm n all=0 sled=0
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        n=$(awk '/^(non)?voluntary_ctxt_switches/ {t += $2} END {printf "%.0f", t}' \
            "$task/status" 2>/dev/null) || continue
        all=$((all + n))
        [[ $comm == sled-io-* ]] && sled=$((sled + n))
    done
    echo "$all $sled"
}
# commits PORT: group commits so far (the batch-size histogram's count).
commits() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk '/^banditd_store_commit_batch_size_count/ {printf "%.0f", $2}'
}

declare -A PID_OF PORT_OF EV_NEXT
start() {
    local name=$1 bin=$2 port=$3
    port_free "$port" || die "port $port is in use; set BANDITD_PORT"
    fill "$WORK/data-$name" "$EVENT_UNITS" ev-
    start_server "banditd ($name)" "$WORK/$name.log" "$bin" serve --bind "127.0.0.1:$port" \
        --data-dir "$WORK/data-$name" --experiments "$WORK/experiments" --workers 1 \
        --access-log off
    PID_OF[$name]=$SERVER_PID
    PORT_OF[$name]=$port
    EV_NEXT[$name]=0
    wait_ready "http://127.0.0.1:$port/readyz" "$SERVER_PID" 60 >/dev/null
    warm_up_at "$port" "$SERVER_PID"
}

start_server baseline "$WORK/baseline.log" "$NEW/banditd-baseline" \
    --bind "127.0.0.1:$((BASE_PORT + 2))" --workers 1
PID_OF[baseline]=$SERVER_PID
PORT_OF[baseline]=$((BASE_PORT + 2))
wait_ready "http://127.0.0.1:$((BASE_PORT + 2))/readyz" "$SERVER_PID" 30 >/dev/null
start old "$OLD/banditd" "$BASE_PORT"
start new "$NEW/banditd" "$((BASE_PORT + 1))"

# one NAME SCENARIO TAG: one wrk run against NAME; prints
# "RPS CPU_US_PER_REQ WRITER_US SLED_US OTHER_US COMMITS_PER_S REQ_PER_COMMIT
#  WRITER_US_PER_COMMIT SLED_US_PER_COMMIT SWITCHES_PER_REQ P50_MS SLED_SWITCHES_PER_COMMIT".
one() {
    local name=$1 scenario=$2 tag=$3 args pid port
    pid=${PID_OF[$name]}
    port=${PORT_OF[$name]}
    case $scenario in
    assign_new) args=(scenario=assign_new) ;;
    event_single) args=(scenario=events batch=1 format=json ev_base="${EV_NEXT[$name]:-0}") ;;
    esac
    SERVER_PID=$pid
    local c0=0 c1=0 t0 t1 s0 s1
    [[ $name != baseline ]] && c0=$(commits "$port")
    read -r -a t0 < <(threads_ns "$pid")
    read -r -a s0 < <(switches "$pid")
    run_wrk "$WORK/$tag.out" "http://127.0.0.1:$port" "$DURATION" "$CONNECTIONS" \
        -- "${args[@]}" run="$tag"
    read -r -a t1 < <(threads_ns "$pid")
    read -r -a s1 < <(switches "$pid")
    [[ $name != baseline ]] && c1=$(commits "$port")
    ((R[errors] == 0 && R[rejected] == 0)) || die "errors in run $tag; see $WORK/$tag.out"
    [[ $scenario == event_single && $name != baseline ]] && EV_NEXT[$name]=${R[highest_next]}
    awk -v n="${R[requests]}" -v rps="${R[rps]}" -v w="$((t1[0] - t0[0]))" \
        -v s="$((t1[1] - t0[1]))" -v o="$((t1[2] - t0[2]))" -v c="$((c1 - c0))" \
        -v x="$((s1[0] - s0[0]))" -v xs="$((s1[1] - s0[1]))" -v secs="$(awk -v u="${R[duration_us]}" 'BEGIN {print u / 1e6}')" \
        -v p50="$(ms "${R[p50_us]}")" 'BEGIN {
            printf "%s %.2f %.2f %.2f %.2f %.0f %.2f %.1f %.1f %.2f %s %.1f\n", rps,
                (w + s + o) / n / 1000, w / n / 1000, s / n / 1000, o / n / 1000, c / secs,
                (c > 0) ? n / c : 0, (c > 0) ? w / c / 1000 : 0, (c > 0) ? s / c / 1000 : 0,
                x / n, p50, (c > 0) ? xs / c : 0 }'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
declare -A RATIOS CPUS
for ((round = 1; round <= ROUNDS; round++)); do
    for scenario in assign_new event_single; do
        log "round $round/$ROUNDS, $scenario: baseline, old, new, baseline"
        load=$(cut -d' ' -f1 /proc/loadavg)
        read -r b1 b1_cpu _ < <(one baseline "$scenario" "$scenario-$round-b1")
        read -r -a o < <(one old "$scenario" "$scenario-$round-old")
        read -r -a n < <(one new "$scenario" "$scenario-$round-new")
        read -r b2 b2_cpu _ < <(one baseline "$scenario" "$scenario-$round-b2")
        b_cpu=$(awk -v a="$b1_cpu" -v b="$b2_cpu" 'BEGIN {printf "%.2f", (a + b) / 2}')
        for build in old new; do
            if [[ $build == old ]]; then v=("${o[@]}"); else v=("${n[@]}"); fi
            r=$(awk -v x="${v[0]}" -v a="$b1" -v b="$b2" 'BEGIN {printf "%.3f", x / ((a + b) / 2)}')
            RATIOS[$scenario-$build]+="$r "
            CPUS[$scenario-$build]+="${v[1]} "
            ROWS+=("| $scenario | $round | $load | $build | $(thousands "${v[0]}") | ${r}× | ${v[10]} | ${v[1]} | ${v[2]} / ${v[3]} / ${v[4]} | $(thousands "${v[5]}") | ${v[6]} | ${v[7]} / ${v[8]} | ${v[9]} | ${v[11]} | $b_cpu |")
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# stats "X1 X2 ...": "median min–max" of the values.
stats() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{v[NR] = $1}
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f–%.3f\n", m, v[1], v[NR] }'
}

cat <<EOF
# new unit and one event per POST: old vs new build vs the bare baseline

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $ROUNDS rounds, $DURATION s per run, $CONNECTIONS connections
- Machine: $(nproc) cores; load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER
- old: $OLD/banditd; new: $NEW/banditd; baseline: $NEW/banditd-baseline
- Servers on core $SERVER_CORE, one worker each, \`--access-log off\`; wrk on core $CLIENT_CORE.
  Ratio: req/s ÷ the mean of the baseline right before and right after. CPU: server µs per
  request, all threads, then writer / sled-io / rest. Commits from \`/metrics\`.

| scenario | round | load (1 min) | build | req/s | ratio | p50 ms | CPU µs/req | writer / sled / rest µs/req | commits/s | req/commit | writer / sled µs/commit | ctx switches/req | sled-io ctx switches/commit | baseline CPU µs/req |
| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |
$(printf '%s\n' "${ROWS[@]}")

| scenario | build | req/s ratio to baseline, median (min–max) | CPU µs per request, median (min–max) |
| --- | --- | --- | --- |
EOF
for scenario in assign_new event_single; do
    for build in old new; do
        read -r rm rr < <(stats "${RATIOS[$scenario-$build]}")
        read -r cm cr < <(stats "${CPUS[$scenario-$build]}")
        echo "| $scenario | $build | ${rm}× ($rr) | $cm ($cr) |"
    done
done
