#!/usr/bin/env bash
# Exact instructions of redis-server per new unit: benches/load/redis_unit_replay.py (new-unit
# group commits as banditd sends them on a single primary) replayed into a redis-server under
# `valgrind --tool=callgrind`, counts zeroed after the script is loaded and dumped after the
# replay (benches/load/redis_reward_cost.sh does the running).
#
#   benches/load/redis_unit_cost.sh OUT_DIR LUA_DIR CALLS PER [--legacy-ops] [--zset-index]
#                                   [--fill N]
#
# Prints the replay's line, then instructions per unit: `total` (the whole process between
# the zero and the dump) and `commands` (processInputBuffer less the replay's two INFO
# commands: the commands' parsing, execution and propagation to the AOF, without serverCron,
# whose share grows with the wall time valgrind takes and varies by ~1% between runs).
set -euo pipefail
OUT=${1:?OUT_DIR}; CALLS=${3:?CALLS}; PER=${4:?PER}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPLAY=redis_unit_replay.py "$HERE/redis_reward_cost.sh" "$@" --wait >/dev/null
callgrind_annotate --inclusive=yes --threshold=100 "$OUT/callgrind.out" 2>/dev/null \
    >"$OUT/inclusive.txt"
cost() { grep -m1 " ???:$1 " "$OUT/inclusive.txt" | awk '{gsub(",", "", $1); print $1}'; }
TOTAL=$(grep -m1 'PROGRAM TOTALS' "$OUT/inclusive.txt" | awk '{gsub(",", "", $1); print $1}')
COMMANDS=$(( $(cost processInputBuffer) - $(cost infoCommand) ))
UNITS=$((CALLS * PER))
cat "$OUT/replay.txt"
echo "units=$UNITS instructions_per_unit total=$((TOTAL / UNITS)) commands=$((COMMANDS / UNITS))"
