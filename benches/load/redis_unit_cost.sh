#!/usr/bin/env bash
# Exact instructions of redis-server per new unit: benches/load/redis_unit_replay.py (new-unit
# group commits as banditd sends them on a single primary) replayed into a redis-server under
# `valgrind --tool=callgrind`, counts zeroed after the script is loaded and dumped after the
# replay (benches/load/redis_reward_cost.sh does the running).
#
#   benches/load/redis_unit_cost.sh OUT_DIR LUA_DIR CALLS PER [--legacy-ops] [--zset-index]
#
# Instructions per unit: the dump's total (OUT_DIR/top.txt, PROGRAM TOTALS) / (CALLS * PER).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPLAY=redis_unit_replay.py exec "$HERE/redis_reward_cost.sh" "$@" --wait
