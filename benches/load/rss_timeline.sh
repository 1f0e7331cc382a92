#!/usr/bin/env bash
# rss_timeline.sh: banditd's memory second by second under the soak's mixed load (90% GETs of
# known sticky units, 10% single-event POSTs on fresh pre-assigned units: `run.sh --soak`),
# without the rest of run.sh. Prints one line a second:
#   t VmRSS RssAnon RssFile (KiB, /proc/PID/status) events_applied checkpoints_logged table_kib
# (table_kib: the store's in-memory tables, banditd_store_table_bytes summed, in KiB)
# Checkpoints are counted from the server's debug log line "store checkpoint"
# (`src/store/wal_checkpoint.rs`).
#
# Usage: benches/load/rss_timeline.sh SECS [EVENT_UNITS]
# Env: BIN (default $CARGO_TARGET_DIR/release), KNOWN_UNITS (10000), CONNECTIONS (64),
# PORT (18090), SERVER_ENV (extra VAR=value words for the server, e.g. MIMALLOC_PURGE_DELAY=0),
# KEEP_WORK=1 keeps the temporary directory (data, logs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${1:?usage: rss_timeline.sh SECS [EVENT_UNITS]}
EVENT_UNITS=${2:-$((SECS * 3000 + 50000))}
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/release}
KNOWN_UNITS=${KNOWN_UNITS:-10000}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18090}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-rss.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

mkdir -p "$WORK/experiments"
cp "$HERE"/experiments/*.yaml "$WORK/experiments/"
"$BIN/banditd-fill" --data-dir "$WORK/data" --experiment "$WORK/experiments/load-sticky.yaml" \
    --count "$EVENT_UNITS" --prefix ev- >"$WORK/fill.out" 2>"$WORK/fill.log"
# shellcheck disable=SC2086 # SERVER_ENV is a list of words
env RUST_LOG=info,banditd::store::wal_checkpoint=debug ${SERVER_ENV:-} "$BIN/banditd" serve \
    --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" --experiments "$WORK/experiments" \
    --workers 1 --access-log off >"$WORK/banditd.log" 2>&1 &
PID=$!
PIDS+=("$PID")
for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
wrk -t1 -c"$CONNECTIONS" -d"$((KNOWN_UNITS / 5000 + 5))s" -s "$HERE/lua/load.lua" \
    "http://127.0.0.1:$PORT" -- threads=1 scenario=warmup known="$KNOWN_UNITS" run=w >"$WORK/warmup.out" 2>&1
wrk -t1 -c"$CONNECTIONS" -d"${SECS}s" --timeout 10s -s "$HERE/lua/load.lua" \
    "http://127.0.0.1:$PORT" -- threads=1 scenario=mixed mix_events=0.1 known="$KNOWN_UNITS" \
    ev_base=0 run=rss >"$WORK/soak.out" 2>&1 &
WRK=$!
PIDS+=("$WRK")
echo "# pid $PID; t VmRSS_kib RssAnon_kib RssFile_kib events_applied checkpoints table_kib"
start=$SECONDS
while kill -0 "$WRK" 2>/dev/null; do
    metrics=$(curl -fs "http://127.0.0.1:$PORT/metrics" 2>/dev/null || true)
    applied=$(awk '/^banditd_events_total.*outcome="applied"/ {s += $2} END {printf "%d", s}' <<<"$metrics")
    tables=$(awk '/^banditd_store_table_bytes/ {s += $2} END {printf "%d", s / 1024}' <<<"$metrics")
    ckpt=$(grep -c "store checkpoint" "$WORK/banditd.log" || true)
    awk -v t=$((SECONDS - start)) -v a="$applied" -v c="$ckpt" -v b="$tables" \
        '/^VmRSS:/ {r=$2} /^RssAnon:/ {n=$2} /^RssFile:/ {f=$2} END {print t, r, n, f, a, c, b}' \
        "/proc/$PID/status"
    sleep 1
done
grep RESULT "$WORK/soak.out" || tail -5 "$WORK/soak.out"
