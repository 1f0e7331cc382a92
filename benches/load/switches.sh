#!/usr/bin/env bash
# Context switches and syscalls per group commit, by thread, under the durable write paths:
#
#   benches/load/switches.sh BIN_DIR [SCENARIOS]
#
# BIN_DIR holds a release `banditd`, `banditd-baseline` is not needed; `banditd-fill` is.
# SCENARIOS: comma-separated subset of assign_new,event_single (default both). One banditd on
# core SERVER_CORE (0), one worker, `--access-log off`, a fresh data dir with EVENT_UNITS
# (300,000) pre-filled `ev-*` units; wrk on CLIENT_CORE (1) with CONNECTIONS (64).
#
# Per scenario, two runs of DURATION (5) s:
#   1. untraced: per thread group (the store writer, its checkpoint thread, sled's `sled-io-*`
#      pool, the HTTP worker and the rest), voluntary and involuntary context switches (`/proc/PID/task/*/status`)
#      and CPU (`schedstat`), divided by the group commits of the run (the server's
#      `banditd_store_commit_batch_size_count`); requests per commit; CPU µs per request from
#      `/proc/PID/stat` (all threads);
#   2. traced: `perf trace -s` on the server for TRACE_SECS (3) s of the run, each thread's
#      syscalls by name, divided by that window's commits (tracing slows the server, so the
#      batch size of this run is printed too; per-commit counts are what to compare).
# Also the writer's mean `fdatasync` wall time per commit (`/metrics`) and the data dir's log
# file (`db`) length before and after each run.
# Output: Markdown on stdout; logs on stderr; KEEP_WORK=1 keeps the temp dir.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LUA_DIR=$HERE/lua
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/phases.sh
source "$HERE/phases.sh"

BIN=${1:?usage: switches.sh BIN_DIR [SCENARIOS]}
SCENARIOS=${2:-assign_new,event_single}
DURATION=${DURATION:-5}
TRACE_SECS=${TRACE_SECS:-3}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
if [[ $(id -u) == 0 ]]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi
KNOWN_UNITS=${KNOWN_UNITS:-1000}
EVENT_UNITS=${EVENT_UNITS:-300000}
PORT=${BANDITD_PORT:-18380}
for bin in "$BIN/banditd" "$BIN/banditd-fill"; do
    [[ -x $bin ]] || die "$bin is missing"
done
command -v perf >/dev/null || die "perf is missing"
ensure_wrk

make_work switches
cp -r "$HERE/experiments" "$WORK/experiments"
STICKY_YAML=$WORK/experiments/load-sticky.yaml

# group COMM: the thread group a thread's name belongs to.
group() {
    case $1 in
    banditd-store-w*) echo writer ;;
    banditd-store-c*) echo checkpoint ;;
    sled-io-*) echo sled ;;
    actix-rt*) echo worker ;;
    *) echo rest ;;
    esac
}

# sample PID: "GROUP VOLUNTARY INVOLUNTARY CPU_NS" per thread group (live threads only).
sample() {
    local task comm
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        awk -v g="$(group "$comm")" -v ns="$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null)" \
            '/^voluntary_ctxt_switches/ {v = $2} /^nonvoluntary_ctxt_switches/ {n = $2}
             END {print g, v, n, ns}' "$task/status" 2>/dev/null || true
    done | awk '{v[$1] += $2; n[$1] += $3; c[$1] += $4}
        END {for (g in v) printf "%s %.0f %.0f %.0f\n", g, v[g], n[g], c[g]}' | sort
}

commits() {
    curl -s "http://127.0.0.1:$PORT/metrics" |
        awk '/^banditd_store_commit_batch_size_count/ {printf "%.0f", $2}'
}
# fsync_us: the writer's sled flush + `fdatasync` time so far, in µs (`banditd_store_fsync_duration_seconds_sum`).
fsync_us() {
    curl -s "http://127.0.0.1:$PORT/metrics" |
        awk '/^banditd_store_fsync_duration_seconds_sum/ {printf "%.0f", $2 * 1e6}'
}
log_len() { stat -c %s "$WORK/data/db"; }

fill "$WORK/data" "$EVENT_UNITS" ev-
start_server banditd "$WORK/banditd.log" "$BIN/banditd" serve --bind "127.0.0.1:$PORT" \
    --data-dir "$WORK/data" --experiments "$WORK/experiments" --workers 1 --access-log off
PID=$SERVER_PID
wait_ready "http://127.0.0.1:$PORT/readyz" "$PID" 60 >/dev/null
warm_up_at "$PORT" "$PID"
EV_NEXT=0

args_for() {
    case $1 in
    assign_new) echo scenario=assign_new ;;
    event_single) echo "scenario=events batch=1 format=json ev_base=$EV_NEXT" ;;
    *) die "unknown scenario $1" ;;
    esac
}

echo "# Context switches and syscalls per group commit"
echo
echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $BIN/banditd"
echo "- Load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; server on core $SERVER_CORE, wrk on $CLIENT_CORE, $CONNECTIONS connections, $DURATION s per run"
IFS=, read -r -a LIST <<<"$SCENARIOS"
for scenario in "${LIST[@]}"; do
    log "$scenario: untraced run"
    len0=$(log_len)
    declare -A V0=() N0=() C0=() V1=() N1=() C1=()
    while read -r g v n c; do V0[$g]=$v N0[$g]=$n C0[$g]=$c; done < <(sample "$PID")
    k0=$(commits)
    f0=$(fsync_us)
    # shellcheck disable=SC2046
    run_wrk "$WORK/$scenario.out" "http://127.0.0.1:$PORT" "$DURATION" "$CONNECTIONS" \
        -- $(args_for "$scenario") run="$scenario-1"
    k1=$(commits)
    f1=$(fsync_us)
    while read -r g v n c; do V1[$g]=$v N1[$g]=$n C1[$g]=$c; done < <(sample "$PID")
    ((R[errors] == 0 && R[rejected] == 0)) || die "errors in $scenario; see $WORK/$scenario.out"
    [[ $scenario == event_single ]] && EV_NEXT=${R[highest_next]}
    len1=$(log_len)
    n=${R[requests]}
    k=$((k1 - k0))
    echo
    echo "## $scenario"
    echo
    echo "Untraced: $(thousands "${R[rps]}") req/s, $(thousands "$k") commits, $(awk -v n="$n" -v k="$k" 'BEGIN {printf "%.1f", n / k}') requests per commit, sled flush + \`fdatasync\` $(awk -v f="$((f1 - f0))" -v k="$k" 'BEGIN {printf "%.0f", f / k}') µs per commit (wall, \`/metrics\`), server CPU $(awk -v t="${R[server_cpu]}" -v r="${R[rps]}" 'BEGIN {printf "%.2f", t * 1e4 / r}') µs per request (\`/proc/PID/stat\`, all threads), load $(cut -d' ' -f1 /proc/loadavg); log file \`db\` $(thousands "$len0") → $(thousands "$len1") bytes."
    echo
    echo "| threads | voluntary / commit | involuntary / commit | CPU µs / commit | CPU µs / request |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for g in writer checkpoint sled worker rest; do
        awk -v g="$g" -v v="$((${V1[$g]:-0} - ${V0[$g]:-0}))" -v x="$((${N1[$g]:-0} - ${N0[$g]:-0}))" \
            -v c="$((${C1[$g]:-0} - ${C0[$g]:-0}))" -v k="$k" -v n="$n" \
            'BEGIN {printf "| %s | %.2f | %.2f | %.1f | %.2f |\n", g, v / k, x / k, c / k / 1000, c / n / 1000}'
    done

    log "$scenario: traced run"
    k0=$(commits)
    perf trace -s -p "$PID" -o "$WORK/$scenario.trace" -- sleep "$TRACE_SECS" &
    tracer=$!
    # shellcheck disable=SC2046
    run_wrk "$WORK/$scenario-traced.out" "http://127.0.0.1:$PORT" "$((TRACE_SECS + 2))" \
        "$CONNECTIONS" -- $(args_for "$scenario") run="$scenario-2"
    wait "$tracer" || true
    k1=$(commits)
    [[ $scenario == event_single ]] && EV_NEXT=${R[highest_next]}
    kt=$((k1 - k0))
    # The trace covers TRACE_SECS of the run's TRACE_SECS + 2: its share of the commits.
    kw=$(awk -v k="$kt" -v t="$TRACE_SECS" 'BEGIN {printf "%.0f", k * t / (t + 2)}')
    echo
    echo "Traced (\`perf trace -s\`, $TRACE_SECS s; ~$(thousands "$kw") commits in the window, $(awk -v n="${R[requests]}" -v k="$kt" 'BEGIN {printf "%.1f", n / k}') requests per commit): syscalls per commit by thread group."
    echo
    echo "| threads | syscall | calls / commit |"
    echo "| --- | --- | ---: |"
    awk -v k="$kw" '
        /^ [^ ].* \([0-9]+\), [0-9]+ events/ {
            name = $1; sub(/^ /, "", name)
            if (name ~ /^banditd-store-w/) g = "writer"
            else if (name ~ /^banditd-store-c/) g = "checkpoint"
            else if (name ~ /^sled-io-/) g = "sled"
            else if (name ~ /^actix-rt/) g = "worker"
            else g = "rest"
            next
        }
        g != "" && $1 ~ /^[a-z_0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= 8 { calls[g " " $1] += $2; total[g] += $2 }
        END {
            for (key in calls) { split(key, p, " "); printf "| %s | %s | %.2f |\n", p[1], p[2], calls[key] / k }
            for (g in total) printf "| %s | **all** | %.2f |\n", g, total[g] / k
        }' "$WORK/$scenario.trace" | sort -t'|' -k2,2 -k4,4gr
done
