#!/usr/bin/env bash
# Restart time and memory of the sled store with many sticky units and kept event ids:
#
#   benches/load/restart.sh [--units U] [--events E] [--runs R] [--quick] [--keep DIR]
#                           [--settle S] [--cold] [--no-build] [--out FILE]
#
#   --units U    sticky units (default 10,000,000; unit ids `s-0` … , 3 arms round-robin)
#   --events E   kept event ids (default 50,000,000; applied events `e-0` … , each crediting
#                an assignment token of its own: see benches/load/fill_events.rs)
#   --runs R     restarts per data dir (default 3, at least 3)
#   --quick      U = 100,000, E = 500,000 (for development)
#   --keep DIR   keep the data dirs in DIR and reuse those already filled with the same U and E
#                (DIR/units-U, DIR/all-U-E; a fill is marked done only once it completed)
#   --settle S   seconds after /readyz before the settled RSS is read (default 5)
#   --cold       empty the kernel's page cache before each restart (root: sync, then
#                /proc/sys/vm/drop_caches), so each start reads its store from the disk, as
#                the first start after a reboot does
#   --no-build   use the release binaries already built
#   --out FILE   also write the Markdown report to FILE
#
# What it does:
#   1. cargo build --release --bin banditd --bin banditd-fill (into $CARGO_TARGET_DIR).
#   2. Three data dirs: empty; U units (banditd-fill --count U); U units + E kept ids (a copy
#      of the second, then banditd-fill --count 0 --events E). A fill stops (and the script
#      fails) if the free disk space falls below MIN_FREE_GB (15).
#   3. Per dir, R times: spawns `banditd serve` on it (2 workers, access log off) and measures
#      the wall time from the spawn to the first 200 of GET /readyz (polled every 10 ms), the
#      process's CPU time by then (user + system, /proc/PID/stat: on a busy machine the stable
#      figure), the load average at the spawn, the
#      peak RSS (VmHWM of /proc/PID/status) and the settled RSS (VmRSS after --settle S), then
#      the bytes it read from the disk by then (read_bytes of /proc/PID/io), checks that the
#      server counts the fill (load-sticky: E rewards, at least U + E exposures), and stops it
#      with SIGTERM. Without --cold every run reads the store the page cache holds warm from
#      the fill or the run before; with it, every run reads it from the disk.
#   4. Memory per unit = (settled RSS of the units dir - settled RSS of the empty dir) / U, and
#      per kept id = (settled RSS of the units + ids dir - settled RSS of the units dir) / E:
#      run i of one dir against run i of the other, so R differences. Both are whole-process
#      differences: whatever the server holds because of the units or ids (the id set, sled's
#      page table and cache for the token credit marks, allocator slack), not one structure.
#   5. Prints a Markdown table (median and range of R runs, with both logs' replay times and
#      the sticky table's own heap bytes per unit, from its log line) and RESTART lines.
# Every process it starts is stopped on exit, Ctrl-C included.
#
# Environment: CARGO_TARGET_DIR (release binaries), BANDITD_PORT (18090), MIN_FREE_GB (15),
# TMPDIR (where the data dirs go without --keep), KEEP_WORK=1 (keep the temp dir).

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"

UNITS=10000000
EVENTS=50000000
RUNS=3
SETTLE=5
COLD=0
BUILD=1
KEEP_DIR=
OUT=
while (($#)); do
    case $1 in
    --units) UNITS=${2:?--units needs a number}; shift ;;
    --events) EVENTS=${2:?--events needs a number}; shift ;;
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    --quick) UNITS=100000; EVENTS=500000 ;;
    --keep) KEEP_DIR=${2:?--keep needs a directory}; shift ;;
    --settle) SETTLE=${2:?--settle needs seconds}; shift ;;
    --cold) COLD=1 ;;
    --no-build) BUILD=0 ;;
    --out) OUT=${2:?--out needs a file}; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
for value in "$UNITS" "$EVENTS" "$RUNS" "$SETTLE"; do
    [[ $value =~ ^[0-9]+$ ]] || die "--units, --events, --runs and --settle take whole numbers"
done
((UNITS > 0 && EVENTS > 0)) || die "--units and --events must be positive (the differences divide by them)"
((RUNS >= 3)) || die "--runs must be at least 3 (every figure is given with its spread)"
BANDITD_PORT=${BANDITD_PORT:-18090}
MIN_FREE_GB=${MIN_FREE_GB:-15}
NICE=0
port_free "$BANDITD_PORT" || die "port $BANDITD_PORT is in use; set BANDITD_PORT"
if ((COLD)) && ! [[ -w /proc/sys/vm/drop_caches ]]; then
    die "--cold empties the page cache through /proc/sys/vm/drop_caches, which needs root"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-restart.XXXXXX")
DATA=${KEEP_DIR:-$WORK}
mkdir -p "$DATA"
cleanup() {
    stop_all
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

if ((BUILD)); then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bin banditd --bin banditd-fill) >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release
for bin in banditd banditd-fill; do
    [[ -x $BIN/$bin ]] || die "$BIN/$bin is missing; build with cargo build --release --bin $bin"
done
EXPERIMENT=$HERE/experiments/load-sticky.yaml
mkdir -p "$WORK/experiments"
cp "$EXPERIMENT" "$WORK/experiments/"

free_gb() { df -P -k "$DATA" | awk 'NR == 2 {printf "%d", $4 / 1048576}'; }

# run_fill LOG ARGS...: banditd-fill on the data dir in ARGS, stopped if the disk runs low.
run_fill() {
    local logfile=$1 pid status=0
    shift
    setsid "$BIN/banditd-fill" --experiment "$EXPERIMENT" "$@" >"$logfile.out" 2>"$logfile" &
    pid=$!
    STARTED_PIDS+=("$pid")
    while kill -0 "$pid" 2>/dev/null; do
        if (($(free_gb) < MIN_FREE_GB)); then
            stop_pid "$pid"
            die "less than $MIN_FREE_GB GB free on $DATA: fill stopped (see $logfile)"
        fi
        sleep 2
    done
    wait "$pid" || status=$?
    forget_pid "$pid"
    ((status == 0)) || die "banditd-fill failed ($status); see $logfile"
    grep '^FILL ' "$logfile.out" >&2
}

# fill_dir NAME: makes $DATA/NAME unless a completed fill of it is there; sets FILL_SECS.
EMPTY_DIR=$DATA/empty
UNITS_DIR=$DATA/units-$UNITS
ALL_DIR=$DATA/all-$UNITS-$EVENTS
declare -A FILL_SECS
fill_dirs() {
    log "$(free_gb) GB free on $DATA"
    rm -rf "$EMPTY_DIR"
    mkdir -p "$EMPTY_DIR"
    if [[ ! -e $UNITS_DIR.done ]]; then
        rm -rf "$UNITS_DIR"
        log "filling $(thousands "$UNITS") units into $UNITS_DIR"
        local t0=$SECONDS
        run_fill "$WORK/fill-units.log" --data-dir "$UNITS_DIR" --count "$UNITS"
        FILL_SECS[units]=$((SECONDS - t0))
        touch "$UNITS_DIR.done"
    else
        log "reusing $UNITS_DIR"
    fi
    if [[ ! -e $ALL_DIR.done ]]; then
        rm -rf "$ALL_DIR"
        cp -a "$UNITS_DIR" "$ALL_DIR"
        log "adding $(thousands "$EVENTS") applied events to $ALL_DIR"
        local t0=$SECONDS
        run_fill "$WORK/fill-events.log" --data-dir "$ALL_DIR" --count 0 --events "$EVENTS"
        FILL_SECS[events]=$((SECONDS - t0))
        touch "$ALL_DIR.done"
    else
        log "reusing $ALL_DIR"
    fi
}

# counted FIELD: the sum of FIELD over load-sticky's arms, from the running server.
counted() {
    curl -s "http://127.0.0.1:$BANDITD_PORT/v1/experiments/load-sticky" |
        python3 -c 'import json, sys; print(round(sum(a[sys.argv[1]] for a in json.load(sys.stdin)["arms"])))' "$1"
}

# status_kb PID FIELD: a VmXXX figure of /proc/PID/status, in KiB.
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# cpu_ms PID: user + system CPU time of the process so far, in ms.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }

# measure NAME DIR EXPOSURES REWARDS RUN: one restart, checked against the exposures and
# rewards the fill counted; appends "ready_ms peak_kb settled_kb replay_ms unit_replay_ms
# table_bytes cpu_ms load1 disk_read_bytes" to $WORK/NAME.runs.
measure() {
    local name=$1 dir=$2 want_exposures=$3 want_rewards=$4 run=$5 start pid ready peak settled replay logfile cpu load1 disk
    logfile=$WORK/$name-$run.log
    if ((COLD)); then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
    load1=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s%N)
    setsid "$BIN/banditd" serve --bind "127.0.0.1:$BANDITD_PORT" --data-dir "$dir" \
        --experiments "$WORK/experiments" --workers 2 --access-log off >"$logfile" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    ready=$(wait_ready "http://127.0.0.1:$BANDITD_PORT/readyz" "$pid" 600 "$start")
    cpu=$(cpu_ms "$pid")
    disk=$(awk '$1 == "read_bytes:" {print $2}' "/proc/$pid/io")
    sleep "$SETTLE"
    peak=$(status_kb "$pid" VmHWM)
    settled=$(status_kb "$pid" VmRSS)
    local exposures rewards
    exposures=$(counted exposures | cut -d. -f1)
    rewards=$(counted rewards)
    stop_pid "$pid"
    # Every kept id is one reward. A token's exposure is counted before its reward, so a fill
    # stopped midway (as by the disk check) may leave a few exposures without their reward.
    [[ $exposures -ge $want_exposures && $rewards == "$want_rewards" ]] ||
        die "$name: the server counts $exposures exposures and $rewards rewards, not $want_exposures (at least) and $want_rewards; see $logfile"
    # The store's own line (src/store/event_log.rs): how long the id replay took.
    replay=$(grep -o 'replayed the event log.*' "$logfile" | grep -o 'millis[=:"]*[0-9]*' | grep -o '[0-9]*$' | head -1)
    # And the unit log's (src/store/sticky_table.rs): its time and the table's heap bytes.
    local units_line unit_replay table_bytes
    units_line=$(grep -o 'replayed the unit log.*' "$logfile" | head -1 || true)
    unit_replay=$(grep -o 'millis[=:"]*[0-9]*' <<<"$units_line" | grep -o '[0-9]*$' || true)
    table_bytes=$(grep -o 'table_bytes[=:"]*[0-9]*' <<<"$units_line" | grep -o '[0-9]*$' || true)
    echo "$ready $peak $settled ${replay:-–} ${unit_replay:-–} ${table_bytes:-0} $cpu $load1 $disk" >>"$WORK/$name.runs"
    log "$name run $run (load $load1): ready in $ready ms, $cpu ms CPU, $((disk / 1000000)) MB read from the disk, peak RSS $((peak / 1024)) MiB, settled $((settled / 1024)) MiB, id replay ${replay:-–} ms, unit replay ${unit_replay:-–} ms"
}

# spread FILE COLUMN: "median (min–max)" of one column.
spread() {
    awk -v c="$2" '{print $c}' "$1" | sort -n | awk '{v[NR] = $1}
        END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
             printf "%s (%s–%s)", m, v[1], v[NR]}'
}
# mib_stat FILE COLUMN: the same for a KiB column, in MiB.
mib_stat() {
    awk -v c="$2" '{printf "%.0f\n", $c / 1024}' "$1" >"$1.mib"
    spread "$1.mib" 1
}
# per_item A B N COLUMN [SCALE]: "median (min–max)" of (A_i - B_i) * SCALE / N over the runs
# i (SCALE 1024: a KiB column in bytes), bytes.
per_item() {
    paste -d ' ' "$WORK/$1.runs" "$WORK/$2.runs" |
        awk -v c="$4" -v n="$3" -v s="${5:-1024}" '{printf "%.1f\n", ($c - $(c + 9)) * s / n}' >"$WORK/$1-$2.diff"
    spread "$WORK/$1-$2.diff" 1
}

fill_dirs
for run in $(seq 1 "$RUNS"); do
    measure empty "$EMPTY_DIR" 0 0 "$run"
    measure units "$UNITS_DIR" "$UNITS" 0 "$run"
    # Each event's token counted its own per-request exposure (fill_events.rs).
    measure all "$ALL_DIR" "$((UNITS + EVENTS))" "$EVENTS" "$run"
done

PER_UNIT=$(per_item units empty "$UNITS" 3)
TABLE_PER_UNIT=$(per_item units empty "$UNITS" 6 1)
PER_ID=$(per_item all units "$EVENTS" 3)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
size() { du -sb "$1" | awk '{if ($1 < 1e9) printf "%.1f MB", $1 / 1e6; else printf "%.2f GB", $1 / 1e9}'; }
row() {
    awk '{printf "%.0f\n", $9 / 1e6}' "$WORK/$3.runs" >"$WORK/$3.runs.mb"
    echo "| $1 | $(size "$2") | $(spread "$WORK/$3.runs" 1) | $(spread "$WORK/$3.runs" 7) | $(spread "$WORK/$3.runs.mb" 1) | $(spread "$WORK/$3.runs" 8) | $(mib_stat "$WORK/$3.runs" 2) | $(mib_stat "$WORK/$3.runs" 3) | $(spread "$WORK/$3.runs" 4) | $(spread "$WORK/$3.runs" 5) |"
}
for name in empty units all; do
    echo "RESTART store=$name cold=$COLD $(awk '{printf "ready_ms=%s cpu_ms=%s disk_read_bytes=%s load1=%s peak_kb=%s settled_kb=%s replay_ms=%s unit_replay_ms=%s ", $1, $7, $9, $8, $2, $3, $4, $5}' "$WORK/$name.runs")"
done
echo "RESTART per_unit_bytes=\"$PER_UNIT\" table_per_unit_bytes=\"$TABLE_PER_UNIT\" per_id_bytes=\"$PER_ID\" load=\"$LOAD\""
REPORT=$(
    cat <<MD
Restart of \`banditd serve\` on a sled data dir, $RUNS runs per dir, median (min–max), $(
        ((COLD)) && echo "the page cache emptied before each (\`--cold\`)" || echo "the store in the page cache"
    ); load
average at the end: $LOAD ($(nproc) cores). Fill times: units ${FILL_SECS[units]:-reused} s,
events ${FILL_SECS[events]:-reused} s (banditd-fill, release).

| data dir | size | spawn to /readyz 200, ms | CPU to /readyz, ms | read from the disk by then, MB | load (1 min) at spawn | peak RSS, MiB | settled RSS (+${SETTLE} s), MiB | event-id replay, ms | unit replay, ms |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(row "empty" "$EMPTY_DIR" empty)
$(row "$(thousands "$UNITS") units" "$UNITS_DIR" units)
$(row "$(thousands "$UNITS") units + $(thousands "$EVENTS") kept ids" "$ALL_DIR" all)

| memory, from settled RSS differences (run i against run i) | bytes |
| --- | ---: |
| per sticky unit: (units − empty) / $(thousands "$UNITS") | $PER_UNIT |
| of which the sticky table (its \`table_bytes\` log line) / $(thousands "$UNITS") | $TABLE_PER_UNIT |
| per kept event id, with its token credit: (units + ids − units) / $(thousands "$EVENTS") | $PER_ID |
MD
)
echo "$REPORT"
[[ -n $OUT ]] && echo "$REPORT" >"$OUT"
exit 0
