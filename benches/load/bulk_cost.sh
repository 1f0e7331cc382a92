#!/usr/bin/env bash
# Exact user-space cost of bulk ingest: instructions per event counted by callgrind, by thread
# and by part, for one or more builds:
#
#   benches/load/bulk_cost.sh BIN_DIR [BIN_DIR...]
#
# Each BIN_DIR holds a release `banditd` and `banditd-fill` (`cargo build --release --bins`).
# Timings on a shared machine are noise, and this VM has no hardware counters; callgrind counts
# every instruction the server executes in user space (not the kernel's TCP, fsync and page
# work), the same on a loaded machine as on a quiet one (benches/load/assign_cost.sh does the
# same for the assign path).
#
# Per build: a fresh data dir with benches/load/experiments and UNITS (200,000) sticky units
# `ev-*` of load-sticky (`banditd-fill`, as benches/load/bulk_ab.sh fills for the events_bulk
# scenario), then the server under `valgrind --tool=callgrind` (one worker, `--access-log off`,
# `--separate-threads=yes`). A sequential client (benches/load/bulk_requests.py, one keep-alive
# connection) sends WARM (20) POSTs of BATCH (1,000) NDJSON events uncounted (lazy
# initialisation, caches, the allocator's pools), then the counters are zeroed
# (`callgrind_control -z`), COUNT (50) POSTs are sent and the counters dumped
# (`callgrind_control -d`), one dump per thread. The bodies are those of load.lua's `events`
# scenario (each event credits its own pre-filled unit), with DUPLICATES (0; e.g. 0.2) of each
# POST's lines re-sent from the POST before. Every POST must answer 200 with exactly the
# expected applied and duplicate counts. Both builds replay the same bytes.
#
# Output (Markdown on stdout, logs on stderr): per build, instructions per event (all threads)
# and per thread (the HTTP worker, the store writer, sled's threads, the rest), heap
# allocations per event, and the named parts of benches/load/bulk_parts.py (inclusive
# instructions per event and calls per event). TOP (0) > 0 also lists the TOP functions of the
# worker and of the writer by inclusive instructions per event. KEEP_WORK=1 keeps the dumps
# (`callgrind_annotate --inclusive=yes FILE`).
# REDIS=1 serves banditd from Redis instead of sled: per build a fresh redis-server on
# REDIS_PORT (18479) with appendonly yes and appendfsync always in a temp dir (as
# benches/load/assign_cost.sh), not under valgrind, filled by `banditd-fill --redis`; only
# banditd's instructions are counted, and the store's thread is the Redis store's runtime
# thread (`banditd-redis`: the commit task, the reward calls' building and replies).
# Valgrind makes the server ~50× slower: a build takes one to three minutes with the fill.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/callgrind.sh
source "$HERE/callgrind.sh"

(($# >= 1)) || die "usage: bulk_cost.sh BIN_DIR [BIN_DIR...]"
COUNT=${COUNT:-50}
WARM=${WARM:-20}
BATCH=${BATCH:-1000}
DUPLICATES=${DUPLICATES:-0}
UNITS=${UNITS:-200000}
TOP=${TOP:-0}
PORT=${BANDITD_PORT:-18290}
SERVER_CORE=${SERVER_CORE:-0}
NICE=${NICE:-0}
REDIS=${REDIS:-0}
REDIS_PORT=${REDIS_PORT:-18479}
((UNITS >= (WARM + COUNT) * BATCH)) || die "UNITS must be at least (WARM + COUNT) × BATCH"
for dir in "$@"; do
    for bin in "$dir/banditd" "$dir/banditd-fill"; do
        [[ -x $bin ]] || die "$bin is missing"
    done
done
command -v valgrind >/dev/null || die "needs valgrind (apt-get install -y valgrind)"
command -v callgrind_control >/dev/null || die "needs callgrind_control (valgrind)"
if ((REDIS)); then
    command -v redis-server >/dev/null || die "REDIS=1 needs redis-server"
    command -v redis-cli >/dev/null || die "REDIS=1 needs redis-cli"
fi

# start_redis NAME: a fresh redis-server for NAME's run (appendfsync always); sets REDIS_PID.
start_redis() {
    start_aof_redis "$WORK/redis-$1" "$REDIS_PORT"
    REDIS_PID=$AOF_REDIS_PID
}

make_work bulk-cost
cp -r "$HERE/experiments" "$WORK/experiments"
EVENTS=$((COUNT * BATCH))

declare -A FILES_OF SECONDS_OF
n=0
for dir in "$@"; do
    n=$((n + 1))
    name=build$n
    data=$WORK/data-$name
    fill_into=(--data-dir "$data") serve_from=()
    if ((REDIS)); then
        start_redis "$name"
        fill_into=(--redis "redis://127.0.0.1:$REDIS_PORT") serve_from=("${fill_into[@]}")
    fi
    log "$name ($dir): filling $(thousands "$UNITS") units"
    "$dir/banditd-fill" "${fill_into[@]}" --experiment "$WORK/experiments/load-sticky.yaml" \
        --count "$UNITS" --prefix ev- 2>>"$WORK/fill.log" | grep -q '^FILL ' ||
        die "banditd-fill failed; see $WORK/fill.log"
    under_callgrind "$name" 600 "$dir/banditd" serve --bind "127.0.0.1:$PORT" --data-dir "$data" \
        --experiments "$WORK/experiments" --workers 1 --access-log off \
        "${serve_from[@]}"
    log "$name: $WARM POSTs uncounted, then $COUNT counted"
    python3 "$HERE/bulk_requests.py" "$PORT" c 0 "$WARM" "$BATCH" "$DUPLICATES" ||
        die "$name: the warm-up failed"
    callgrind_control -z "$SERVER_PID" >/dev/null
    t0=$(date +%s.%N)
    python3 "$HERE/bulk_requests.py" "$PORT" c "$WARM" "$COUNT" "$BATCH" "$DUPLICATES" ||
        die "$name: the counted POSTs failed"
    t1=$(date +%s.%N)
    FILES_OF[$name]=$(dump "$name" "counted-bulk" 120)
    SECONDS_OF[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    stop_pid "$SERVER_PID"
    if ((REDIS)); then
        stop_pid "$REDIS_PID"
    fi
done

cat <<EOF
# Instructions per bulk event (callgrind, user space)

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average (1/5/15 min) $(cut -d' ' -f1-3 /proc/loadavg)
- $COUNT counted POSTs of $BATCH NDJSON events ($(thousands "$EVENTS") events, $DUPLICATES of
  each POST re-sent from the one before) after $WARM uncounted; $(thousands "$UNITS") pre-filled
  units; one worker, \`--access-log off\`; one keep-alive connection.
- Store: $( ((REDIS)) && echo "Redis (a fresh redis-server per build on port $REDIS_PORT, appendfsync always; not counted)" || echo sled)
- Per event: the counted instructions ÷ the counted events (applied and duplicate alike).
EOF
n=0
for dir in "$@"; do
    n=$((n + 1))
    name=build$n
    cat <<EOF

## $name: $dir/banditd (counted run ${SECONDS_OF[$name]} s under callgrind)

| part | instructions per event | calls per event |
| --- | ---: | ---: |
$(python3 "$HERE/bulk_parts.py" "${FILES_OF[$name]}" "$EVENTS")
EOF
    if ((TOP > 0)); then
        for thread in worker writer redis; do
            file=$(python3 "$HERE/bulk_parts.py" --thread "$thread" "${FILES_OF[$name]}")
            [[ -n $file ]] || continue
            cat <<EOF

| Ir per event | function (top $TOP on the $thread thread, inclusive) |
| ---: | --- |
$(top "$file" "$EVENTS" "$TOP")
EOF
        done
    fi
done
