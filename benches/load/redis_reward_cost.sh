#!/usr/bin/env bash
# Exact instructions of redis-server per bulk reward event: benches/load/redis_reward_replay.py
# replayed into a redis-server run under `valgrind --tool=callgrind` (appendonly yes,
# appendfsync always), the counts zeroed after the setup and dumped after the replay, so the
# dump holds the replay alone. Load-independent (no hardware counters are needed).
#
#   benches/load/redis_reward_cost.sh OUT_DIR LUA_DIR EVENTS [replay options...]
#
# OUT_DIR gets callgrind.out (the dump), replay.txt (the replay's line) and top.txt
# (callgrind_annotate --inclusive=yes, the top functions). Environment: REDIS_PORT (18651),
# REPLAY (the replay tool in this directory: redis_reward_replay.py; redis_unit_cost.sh sets
# redis_unit_replay.py, whose arguments after LUA_DIR are CALLS PER [options] --wait).
set -euo pipefail
OUT=${1:?OUT_DIR}; LUA=${2:?LUA_DIR}; EVENTS=${3:?EVENTS}; shift 3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=${REDIS_PORT:-18651}
mkdir -p "$OUT"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/banditd-reward-cost.XXXXXX")
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.raw.%p" \
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DATA" --appendonly yes \
    --appendfsync always --save '' --auto-aof-rewrite-percentage 0 >"$OUT/redis.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$DATA"' EXIT
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.2; done
FIFO=$DATA/go
# A READY left by an earlier run in OUT_DIR would start the count before this replay's setup.
rm -f "$OUT/replay.err" "$OUT/replay.txt"
mkfifo "$FIFO"
python3 "$HERE/${REPLAY:-redis_reward_replay.py}" "$PORT" "$LUA" "$EVENTS" "$@" <"$FIFO" \
    >"$OUT/replay.txt" 2>"$OUT/replay.err" &
REPLAY=$!
exec 3>"$FIFO"
until grep -q READY "$OUT/replay.err" 2>/dev/null; do
    kill -0 "$REPLAY" 2>/dev/null || { cat "$OUT/replay.err" >&2; exit 1; }
    sleep 0.2
done
callgrind_control -z "$PID" >/dev/null
echo go >&3
wait "$REPLAY"
callgrind_control -d "$PID" >/dev/null
sleep 1
DUMP=$(ls -t "$OUT"/callgrind.raw.* | grep -v '\.raw\.[0-9]*$' | head -1 || true)
[[ -n $DUMP ]] || DUMP=$(ls -t "$OUT"/callgrind.raw.* | head -1)
cp "$DUMP" "$OUT/callgrind.out"
# Whole, then cut: `| head` could end callgrind_annotate with SIGPIPE, which pipefail makes
# this script's failure.
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" >"$OUT/annotated.txt" 2>/dev/null
head -80 "$OUT/annotated.txt" >"$OUT/top.txt"
cat "$OUT/replay.txt"
grep -m1 'PROGRAM TOTALS' "$OUT/top.txt" || head -20 "$OUT/top.txt"
