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
# Prints `state DIGEST KEYS`: the data the replay left, every key's type and content in a
# canonical order (hash fields, set members and sorted-set members sorted; TTLs left out), so
# two scripts that write the same data by other commands, or in another order, compare equal.
# Then `digest commands bytes` of the AOF's incremental part (setup included), which tells
# how the data was written. A library loaded as a function (--fcall) leaves its FUNCTION LOAD
# in the AOF: that record is left out of the digest, the count and the bytes, so the data a
# script and a function write compare.
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
python3 - "$PORT" "$HERE" <<'PY'
import hashlib, sys
sys.path.insert(0, sys.argv[2])
from resp import Resp
cmd = Resp(int(sys.argv[1])).cmd
keys, cursor = set(), b"0"
while True:
    cursor, batch = cmd("SCAN", cursor, "COUNT", 1000)
    keys.update(batch)
    if cursor == b"0":
        break
digest = hashlib.sha256()
def put(*parts):
    for part in parts:
        digest.update(b"%d:" % len(part) + part)
for key in sorted(keys):
    kind = cmd("TYPE", key)
    if kind == b"hash":
        flat = cmd("HGETALL", key)
        content = sorted(zip(flat[0::2], flat[1::2]))
    elif kind == b"set":
        content = [(m,) for m in sorted(cmd("SMEMBERS", key))]
    elif kind == b"zset":
        flat = cmd("ZRANGE", key, 0, -1, "WITHSCORES")
        content = sorted(zip(flat[0::2], flat[1::2]))
    elif kind == b"list":
        content = [(m,) for m in cmd("LRANGE", key, 0, -1)]
    elif kind == b"string":
        content = [(cmd("GET", key),)]
    else:
        sys.exit("unexpected type %r of %r" % (kind, key))
    put(key, kind)
    for item in content:
        put(*item)
print("state", digest.hexdigest()[:12], len(keys))
PY
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
