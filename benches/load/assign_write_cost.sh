#!/usr/bin/env bash
# Exact user-space cost of the durable write paths, a new sticky unit and a single event per
# POST: instructions per request counted by callgrind, by thread and by part, at one and at
# many connections, against the bare actix-web handler:
#
#   benches/load/assign_write_cost.sh BIN_DIR [COUNT]
#
# BIN_DIR holds a release `banditd` and `banditd-baseline` (`cargo build --release --bins`).
# Callgrind counts every instruction in user space the same on a loaded machine as on a quiet
# one (benches/load/assign_cost.sh does the same for the known-unit and per-request paths; the
# kernel's share is counted by benches/load/switches.sh).
#
# The server runs under `valgrind --tool=callgrind --separate-threads=yes` (one worker,
# `--access-log off`, a fresh data dir with benches/load/experiments). The client
# (benches/load/assign_write_requests.py) keeps CONNECTIONS keep-alive connections busy and
# sends exactly COUNT (2,000) requests: new units `w-<i>` of load-sticky (assign_new), then
# one event per POST crediting each of them once (event_single). WARM (300) requests of each
# go first, uncounted. Per scenario and per connection count in LEVELS ("1 64"): the counters
# are zeroed (`callgrind_control -z`), COUNT requests sent, the counters dumped; the group
# commits of the window are the server's `banditd_store_commit_batch_size` count and sum
# (read before the zeroing and after the dump, so the reads are not counted). At one
# connection every commit carries one request; at 64 the commits are as large as the server
# under valgrind makes them (3.7–4.5 requests per commit, against ~30 natively): with the two
# levels, a thread's instructions per commit, c(n) = per commit + n × per request, give both
# parts (benches/load/results/unit7-2026-12-01-s12.md). The baseline serves the assign_new
# requests at the same levels.
#
# Output (Markdown on stdout, logs on stderr): per scenario and level, requests per commit,
# instructions per request by thread group (benches/load/assign_write_parts.py), heap
# allocations per request by group, and the named parts. SHA-256 runs its portable code under
# valgrind (~3,500 instructions a block; natively SHA-NI): the token's blocks are listed apart.
# TOP (0) > 0 lists the TOP functions of the worker and of the writer. KEEP_WORK=1 keeps the
# dumps.
#
# SLOW_SYNC_US (0) > 0 preloads benches/load/assign_write_slow_sync.c into banditd (built here
# with cc): each fdatasync sleeps that long first, so that a commit gathers as many requests as
# natively (~30) instead of valgrind's ~4, and the per-request part is counted at that size
# (20,000 µs gives ~23 at 64 connections). A sleep adds no instructions.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/callgrind.sh
source "$HERE/callgrind.sh"

BIN=${1:?usage: assign_write_cost.sh BIN_DIR [COUNT]}
COUNT=${2:-2000}
WARM=${WARM:-300}
LEVELS=${LEVELS:-"1 64"}
TOP=${TOP:-0}
SLOW_SYNC_US=${SLOW_SYNC_US:-0}
PORT=${BANDITD_PORT:-18285}
SERVER_CORE=${SERVER_CORE:-0}
NICE=${NICE:-0}
for bin in "$BIN/banditd" "$BIN/banditd-baseline"; do
    [[ -x $bin ]] || die "$bin is missing"
done
command -v valgrind >/dev/null || die "needs valgrind (apt-get install -y valgrind)"
command -v callgrind_control >/dev/null || die "needs callgrind_control (valgrind)"

make_work assign-write-cost
cp -r "$HERE/experiments" "$WORK/experiments"
DRIVER=(python3 "$HERE/assign_write_requests.py" "$PORT")

# commit_stats: "COUNT SUM" of the server's commit batch sizes so far.
commit_stats() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '
        /^banditd_store_commit_batch_size_count/ {c = $2}
        /^banditd_store_commit_batch_size_sum/ {s = $2}
        END {printf "%.0f %.0f\n", c, s}'
}

# dump_with FILES PATTERN: the dump among FILES in which PATTERN ran.
dump_with() {
    local file
    for file in ${1//,/ }; do
        grep -qE "$2" "$file" && { echo "$file"; return; }
    done
    echo "${1%%,*}"
}

# measure NAME SCENARIO FIRST CONNECTIONS: COUNT requests counted; prints "DUMPS COMMITS SIZE_SUM".
measure() {
    local name=$1 scenario=$2 first=$3 connections=$4 c0 s0 c1 s1 files
    read -r c0 s0 < <(commit_stats)
    callgrind_control -z "$SERVER_PID" >/dev/null
    "${DRIVER[@]}" "$scenario" "$first" "$COUNT" "$connections" || die "$scenario failed"
    files=$(dump "$name" "counted-$scenario-$connections")
    read -r c1 s1 < <(commit_stats)
    echo "$files $((c1 - c0)) $((s1 - s0))"
}

read -r -a LEVEL_LIST <<<"$LEVELS"
declare -A FILES COMMITS SIZES
PRELOAD=
if ((SLOW_SYNC_US > 0)); then
    cc -shared -fPIC -O2 -o "$WORK/slow_sync.so" "$HERE/assign_write_slow_sync.c" -ldl ||
        die "could not build the fdatasync shim"
    PRELOAD=$WORK/slow_sync.so
fi
# Valgrind hands LD_PRELOAD on to the server (after its own preloads).
LD_PRELOAD=$PRELOAD SLOW_SYNC_US=$SLOW_SYNC_US under_callgrind banditd 300 "$BIN/banditd" \
    serve --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" --experiments "$WORK/experiments" \
    --workers 1 --access-log off
log "banditd: warm-up ($WARM new units, $WARM events)"
"${DRIVER[@]}" assign_new 0 "$WARM" 8 || die "the warm-up failed"
"${DRIVER[@]}" event_single 0 "$WARM" 8 || die "the warm-up failed"
next=$WARM
for level in "${LEVEL_LIST[@]}"; do
    for scenario in assign_new event_single; do
        log "banditd: $scenario, $COUNT requests over $level connections"
        read -r FILES[$scenario-$level] COMMITS[$scenario-$level] SIZES[$scenario-$level] \
            < <(measure banditd "$scenario" "$next" "$level")
    done
    next=$((next + COUNT))
done
stop_pid "$SERVER_PID"

under_callgrind baseline 300 "$BIN/banditd-baseline" --bind "127.0.0.1:$PORT" --workers 1
"${DRIVER[@]}" baseline 0 "$WARM" 8 || die "the baseline warm-up failed"
for level in "${LEVEL_LIST[@]}"; do
    log "baseline: $COUNT requests over $level connections"
    callgrind_control -z "$SERVER_PID" >/dev/null
    "${DRIVER[@]}" baseline 0 "$COUNT" "$level" || die "baseline failed"
    FILES[baseline-$level]=$(dump baseline "counted-baseline-$level")
    COMMITS[baseline-$level]=0 SIZES[baseline-$level]=0
done
stop_pid "$SERVER_PID"

cat <<EOF
# Instructions per durable write request (callgrind, user space, by thread)

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $COUNT counted requests per scenario and level after
  $WARM of each uncounted; one worker, \`--access-log off\`; connections: $LEVELS;
  each fdatasync slowed by $SLOW_SYNC_US µs (SLOW_SYNC_US).
- banditd: $BIN/banditd; baseline: $BIN/banditd-baseline
- Commits: the server's \`banditd_store_commit_batch_size\` over the counted window.
EOF
for level in "${LEVEL_LIST[@]}"; do
    for scenario in assign_new event_single baseline; do
        key=$scenario-$level
        commits=${COMMITS[$key]}
        cat <<EOF

## $scenario, $level connections

Commits: $commits ($(awk -v s="${SIZES[$key]}" -v c="$commits" 'BEGIN {if (c > 0) printf "%.1f", s / c; else printf "–"}') requests per commit).

| thread group | instructions per request | per commit | heap allocations per request |
| --- | ---: | ---: | ---: |
$(python3 "$HERE/assign_write_parts.py" "${FILES[$key]}" "$COUNT" "$commits")
EOF
        if ((TOP > 0)); then
            for pattern in InnerDispatcher 'Writer>?::(process|commit)'; do
                cat <<EOF

| Ir per request | function (top $TOP, the thread running \`$pattern\`, inclusive) |
| ---: | --- |
$(top "$(dump_with "${FILES[$key]}" "$pattern")" "$COUNT" "$TOP")
EOF
            done
        fi
    done
done
