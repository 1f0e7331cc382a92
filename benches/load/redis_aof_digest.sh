#!/usr/bin/env bash
# What a script's replay leaves in the AOF, as a digest two builds' scripts can be compared by:
# benches/load/redis_unit_replay.py (new units, fixed clock) or redis_reward_replay.py (bulk
# rewards) into a plain redis-server (appendonly yes, appendfsync always), then the AOF's
# commands hashed with the times of PEXPIREAT (Redis's clock at propagation: `keep_at_least`'s
# PEXPIRE) left out.
#
#   benches/load/redis_aof_digest.sh units LUA_DIR [--fcall]  (30 calls of 32 new units)
#   benches/load/redis_aof_digest.sh rewards LUA_DIR [redis_reward_replay.py options]
#
# Prints `digest commands bytes` of the AOF's incremental part (setup included). A library
# loaded as a function (--fcall) leaves its FUNCTION LOAD in the AOF: that record is left out
# of the digest, the count and the bytes, so the data a script and a function write compare.
# Environment: REDIS_PORT (18652).
set -euo pipefail
KIND=${1:?units|rewards}; LUA=${2:?LUA_DIR}; shift 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=${REDIS_PORT:-18652}
DATA=$(mktemp -d "${TMPDIR:-/tmp}/banditd-aof-digest.XXXXXX")
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DATA" --appendonly yes \
    --appendfsync always --save '' --auto-aof-rewrite-percentage 0 >"$DATA/redis.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$DATA"' EXIT
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.1; done
until ls "$DATA"/appendonlydir/*.incr.aof >/dev/null 2>&1; do sleep 0.1; done
# Python's string hashing orders the replays' dicts of keys: fixed, so both runs send the same.
export PYTHONHASHSEED=0
case $KIND in
    units) python3 "$HERE/redis_unit_replay.py" "$PORT" "$LUA" 30 32 --now 1796000000000 "$@" \
        >/dev/null ;;
    rewards) echo go | python3 "$HERE/redis_reward_replay.py" "$PORT" "$LUA" 5000 "$@" \
        >/dev/null 2>&1 ;;
    *) echo "units or rewards, not $KIND" >&2; exit 2 ;;
esac
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
wait "$PID" 2>/dev/null || true
python3 - "$DATA"/appendonlydir/*.incr.aof <<'PY'
import hashlib, os, sys
path = sys.argv[1]
data, at, digest, commands, skipped = open(path, "rb").read(), 0, hashlib.sha256(), 0, 0
while at < len(data):
    start = at
    end = data.index(b"\r\n", at)
    count, at = int(data[at + 1:end]), end + 2
    args = []
    for _ in range(count):
        end = data.index(b"\r\n", at)
        length, at = int(data[at + 1:end]), end + 2
        args.append(data[at:at + length])
        at += length + 2
    if args[0].upper() == b"FUNCTION":
        skipped += at - start
        continue
    if args[0].upper() == b"PEXPIREAT":
        args[2] = b"T"
    for arg in args:
        digest.update(b"%d:" % len(arg) + arg)
    commands += 1
print(digest.hexdigest()[:12], commands, os.path.getsize(path) - skipped)
PY
