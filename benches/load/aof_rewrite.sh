#!/usr/bin/env bash
# Redis bulk ingest with and without an AOF rewrite of redis-server running beside it,
# alternated: each round runs `benches/load/run.sh --quick --no-build --redis --scenarios
# events_bulk` once as it is (the AOF rewritten after the fill, so no rewrite meets the run)
# and once with REDIS_REWRITE_DURING=1 (redis.sh starts a BGREWRITEAOF as the load starts).
# Prints per run the Redis bulk rate, whether a rewrite overlapped it, and the load average.
#
#   benches/load/aof_rewrite.sh [ROUNDS]    (CARGO_TARGET_DIR names the release build)
#
# Why: redis-server rewrites its AOF by itself when it has doubled since the last rewrite;
# the child doing it shares Redis's core (on this 2-core machine, also wrk's) and its writes
# queue beside every fsync of `appendfsync always`.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${1:-3}
OUT=$(mktemp -d /tmp/aof-rewrite.XXXXXX)
echo "| run | AOF rewrite started with the load | Redis bulk events/s | rewrite overlapped | sled bulk events/s | load average before |"
echo "| --- | --- | ---: | --- | ---: | --- |"
run=0
for ((round = 1; round <= ROUNDS; round++)); do
    order=(0 1)
    ((round % 2 == 0)) && order=(1 0)
    for during in "${order[@]}"; do
        run=$((run + 1))
        load=$(cut -d' ' -f1 /proc/loadavg)
        REDIS_REWRITE_DURING=$during "$HERE/run.sh" --quick --no-build --redis \
            --scenarios events_bulk >"$OUT/$run.md" 2>"$OUT/$run.log" ||
            { echo "run.sh failed; see $OUT/$run.log" >&2; exit 1; }
        # The targets' rows: | what | target | measured | verdict |
        redis=$(grep '^| Redis: bulk durable ingest' "$OUT/$run.md" | awk -F'|' '{print $4}' |
            grep -o '[0-9,]* events/s' | cut -d' ' -f1)
        sled=$(grep '^| bulk ingest (1,000 per POST)' "$OUT/$run.md" | awk -F'|' '{print $4}' |
            grep -o '[0-9,]* events/s' | cut -d' ' -f1)
        overlapped=no
        grep -q 'AOF rewrite of redis-server overlapped' "$OUT/$run.log" && overlapped=yes
        echo "| $run | $([[ $during == 1 ]] && echo yes || echo no) | $redis | $overlapped | $sled | $load |"
    done
done
git -C "$HERE/../.." checkout -q benches/load/results/latest.md benches/load/results/redis-latest.md 2>/dev/null || true
echo
echo "Logs: $OUT"
