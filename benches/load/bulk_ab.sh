#!/usr/bin/env bash
# A/B of two banditd builds on bulk ingest (1,000 events per POST, NDJSON, 20% duplicates),
# alternated in one run, with exact per-event counts:
#
#   [ALLOCS=1] benches/load/bulk_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]
#
# Each *_BIN_DIR holds a release `banditd`; `banditd-fill` comes from NEW_BIN_DIR. Both servers
# run at once on core SERVER_CORE (0), each on a fresh data dir with EVENT_UNITS (ROUNDS ×
# DURATION × 550,000 + 100,000, a round more with ALLOCS=1) pre-filled `ev-*` units, one worker, `--access-log off`; only the
# one under load is busy. Per round: old, then new (then new, old in the next round, so neither
# build always goes first), DURATION (5) s each, wrk on CLIENT_CORE (1) with BULK_CONNECTIONS (8).
# Reported per run, from /proc: applied events/s; server CPU µs per applied event (all threads,
# from schedstat), split into the store writer thread and the rest; minor page faults per
# applied event (the process's `minflt`: each is a fresh page the kernel zeroed or mapped);
# context switches per request; device bytes written per applied event (`/proc/PID/io`); the
# server's RSS after the run.
# OLD_ENV / NEW_ENV: environment assignments for one side's server only (e.g.
# NEW_ENV="MIMALLOC_PURGE_DELAY=-1" with the same directory on both sides: an allocator option
# measured without a rebuild). Output: Markdown on stdout; logs on stderr.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LUA_DIR=$HERE/lua
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/phases.sh
source "$HERE/phases.sh"

OLD=${1:?usage: bulk_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]}
NEW=${2:?usage: bulk_ab.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]}
ROUNDS=${3:-3}
DURATION=${DURATION:-5}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-8}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
if [[ $(id -u) == 0 ]]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi
KNOWN_UNITS=${KNOWN_UNITS:-1000}
EVENT_UNITS=${EVENT_UNITS:-$(((ROUNDS + ${ALLOCS:-0}) * DURATION * 550000 + 100000))}
BASE_PORT=${BANDITD_PORT:-18380}
BIN=$NEW
for bin in "$OLD/banditd" "$NEW/banditd" "$NEW/banditd-fill"; do
    [[ -x $bin ]] || die "$bin is missing"
done
ensure_wrk

WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-bulk-ab.XXXXXX")
cleanup() {
    stop_all
    if [[ ${ALLOCS:-0} == 1 ]]; then perf probe -q -d 'probe_banditd:bulkab_*' >/dev/null 2>&1 || true; fi
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
cp -r "$HERE/experiments" "$WORK/experiments"
STICKY_YAML=$WORK/experiments/load-sticky.yaml

# counts PID: "WRITER_NS OTHER_NS MINFLT SWITCHES WRITTEN_BYTES" so far (all live threads).
counts() {
    local task comm ns w=0 o=0 x=0 n
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        ns=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null) || continue
        case $comm in
        banditd-store-w*) w=$((w + ns)) ;;
        *) o=$((o + ns)) ;;
        esac
        n=$(awk '/^(non)?voluntary_ctxt_switches/ {t += $2} END {printf "%.0f", t}' \
            "$task/status" 2>/dev/null) || continue
        x=$((x + n))
    done
    echo "$w $o $(awk '{print $10}' "/proc/$1/stat") $x $(written_bytes "$1")"
}

declare -A PID_OF PORT_OF EV_NEXT
start() {
    local name=$1 bin=$2 port=$3 assignments
    read -r -a assignments <<<"$4"
    port_free "$port" || die "port $port is in use; set BANDITD_PORT"
    fill "$WORK/data-$name" "$EVENT_UNITS" ev-
    start_server "banditd ($name)" "$WORK/$name.log" env "${assignments[@]}" "$bin" serve \
        --bind "127.0.0.1:$port" \
        --data-dir "$WORK/data-$name" --experiments "$WORK/experiments" --workers 1 \
        --access-log off
    PID_OF[$name]=$SERVER_PID
    PORT_OF[$name]=$port
    EV_NEXT[$name]=0
    wait_ready "http://127.0.0.1:$port/readyz" "$SERVER_PID" 120 >/dev/null
}

start old "$OLD/banditd" "$BASE_PORT" "${OLD_ENV:-}"
start new "$NEW/banditd" "$((BASE_PORT + 1))" "${NEW_ENV:-}"

# one NAME TAG: one wrk run against NAME; prints
# "EVENTS_PER_S CPU_US WRITER_US OTHER_US MINFLT_PER_EVENT SWITCHES_PER_REQ BYTES_PER_EVENT
#  RSS_MB".
one() {
    local name=$1 tag=$2 pid port a b
    pid=${PID_OF[$name]}
    port=${PORT_OF[$name]}
    SERVER_PID=$pid
    read -r -a a < <(counts "$pid")
    run_wrk "$WORK/$tag.out" "http://127.0.0.1:$port" "$DURATION" "$BULK_CONNECTIONS" \
        -- scenario=events batch=1000 format=ndjson ev_base="${EV_NEXT[$name]}" run="$tag"
    read -r -a b < <(counts "$pid")
    ((R[errors] == 0 && R[rejected] == 0)) || die "errors in run $tag; see $WORK/$tag.out"
    EV_NEXT[$name]=${R[highest_next]}
    awk -v n="${R[applied]}" -v q="${R[requests]}" -v eps="${R[events_per_s]}" \
        -v w="$((b[0] - a[0]))" -v o="$((b[1] - a[1]))" -v f="$((b[2] - a[2]))" \
        -v x="$((b[3] - a[3]))" -v y="$((b[4] - a[4]))" -v rss="${R[rss_mb]}" 'BEGIN {
            printf "%s %.2f %.2f %.2f %.3f %.1f %.0f %s\n", eps, (w + o) / n / 1000, w / n / 1000,
                o / n / 1000, f / n, x / q, y / n, rss }'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
declare -A EVS CPUS FAULTS
for ((round = 1; round <= ROUNDS; round++)); do
    order=(old new)
    ((round % 2 == 0)) && order=(new old)
    for build in "${order[@]}"; do
        log "round $round/$ROUNDS: $build"
        load=$(cut -d' ' -f1 /proc/loadavg)
        # In this shell, not a subshell: `one` moves EV_NEXT on, so each run credits fresh units.
        one "$build" "bulk-$round-$build" >"$WORK/row"
        read -r -a v <"$WORK/row"
        EVS[$build]+="${v[0]} "
        CPUS[$build]+="${v[1]} "
        FAULTS[$build]+="${v[4]} "
        ROWS+=("| $round | $load | $build | $(thousands "${v[0]}") | ${v[1]} | ${v[2]} / ${v[3]} | ${v[4]} | ${v[5]} | ${v[6]} | ${v[7]} |")
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ALLOCS=1: heap allocations per applied event, counted exactly (uprobes on mimalloc's entry
# points, which Rust's global allocator calls for every allocation; as in hot_ab.sh), in one
# extra run per build. The count does not depend on what else the machine runs; the probes
# slow the server down, so that run's events/s and CPU are not reported.
ALLOC_ROWS=()
if [[ ${ALLOCS:-0} == 1 ]]; then
    command -v perf >/dev/null || die "ALLOCS=1 needs perf (linux-perf) with uprobes"
    for name in old new; do
        bin=$OLD/banditd
        [[ $name == new ]] && bin=$NEW/banditd
        for fn in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
            perf probe -q -x "$bin" -a "bulkab_${name}_$fn=$fn" >/dev/null 2>&1 ||
                die "cannot place a uprobe on $fn in $bin"
        done
    done
    for name in old new; do
        perf stat -x, -e "probe_banditd:bulkab_${name}_*" -p "${PID_OF[$name]}" \
            -o "$WORK/allocs-$name.csv" >/dev/null 2>&1 &
        stat_pid=$!
        STARTED_PIDS+=("$stat_pid")
        sleep 0.5
        one "$name" "allocs-$name" >/dev/null
        kill -INT "$stat_pid" 2>/dev/null || true
        wait "$stat_pid" 2>/dev/null || true
        forget_pid "$stat_pid"
        count=$(awk -F, '$3 ~ /probe_banditd/ {n += $1} END {print n + 0}' "$WORK/allocs-$name.csv")
        ALLOC_ROWS+=("| $name | $(awk -v n="$count" -v e="${R[applied]}" -v r="${R[requests]}" \
            'BEGIN {printf "%.2f | %.0f", (e > 0) ? n / e : 0, (r > 0) ? n / r : 0}') |")
    done
    perf probe -q -d 'probe_banditd:bulkab_*' >/dev/null 2>&1 || true
fi

# stats "X1 X2 ...": "median min–max" of the values.
stats() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{v[NR] = $1}
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f–%.3f\n", m, v[1], v[NR] }'
}

cat <<EOF
# bulk ingest: old vs new build, alternated

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $ROUNDS rounds, $DURATION s per run, $BULK_CONNECTIONS connections, 1,000 events per POST (NDJSON, 20% duplicates), $(thousands "$EVENT_UNITS") pre-filled units
- Machine: $(nproc) cores; load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER
- old: $OLD/banditd ${OLD_ENV:-}; new: $NEW/banditd ${NEW_ENV:-}
- Servers on core $SERVER_CORE, one worker each, \`--access-log off\`; wrk on core $CLIENT_CORE.
  CPU: server µs per applied event, all threads, then writer / rest. Page faults: the
  process's minor faults per applied event.

| round | load (1 min) | build | events/s | CPU µs/event | writer / rest µs/event | page faults/event | ctx switches/request | device bytes/event | RSS MB after |
| ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${ROWS[@]}")

| build | events/s, median (min–max) | CPU µs per event, median (min–max) | page faults per event, median (min–max) |
| --- | --- | --- | --- |
EOF
for build in old new; do
    read -r em er < <(stats "${EVS[$build]}")
    read -r cm cr < <(stats "${CPUS[$build]}")
    read -r fm fr < <(stats "${FAULTS[$build]}")
    echo "| $build | $em ($er) | $cm ($cr) | $fm ($fr) |"
done
if ((${#ALLOC_ROWS[@]})); then
    echo
    echo "Heap allocations (ALLOCS=1: one extra run per build, uprobes on mimalloc):"
    echo
    echo "| build | allocations per applied event | allocations per request |"
    echo "| --- | ---: | ---: |"
    printf '%s\n' "${ALLOC_ROWS[@]}"
fi
