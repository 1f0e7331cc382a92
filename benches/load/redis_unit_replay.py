#!/usr/bin/env python3
"""Replays new-unit group commits of apply.lua into a running redis-server, without banditd.

    benches/load/redis_unit_replay.py PORT LUA_DIR CALLS PER [--legacy-ops] [--zset-index]
                                      [--wait] [--fill N] [--now MS] [--fcall]

Each call carries PER new units of the 3-arm `load-sticky` experiment, spread over the 8 shards
as src/store/redis/call.rs spreads them (a single primary: one call for all shards, op P
first). LUA_DIR holds the script files (apply.lua, apply_rewards.lua if any, apply_ops.lua).
--legacy-ops sends each unit's expected-exposure shares in its own op, as builds before the
share sets (op W) did; --zset-index names the unit index sorted set `<tag>:n` where builds
before the list of new units (`<tag>:p`) wrote. Prints Redis's CPU, its time in scripts and its
AOF growth per unit. --fill N (default 1000) first writes N
units to each shard's records hash: a hash of fewer than 128 fields is a listpack, searched
linearly by every HMGET and HSET, which an epoch's records hash is only for its first few
hundred units (`--fill 0`: a fresh epoch, as the eighth round measured). --wait builds every call first, then prints `READY` on stderr and waits
for a line on stdin before the replay (benches/load/redis_unit_cost.sh zeroes callgrind's
counts then). For exact, load-independent counts run redis-server under
`valgrind --tool=callgrind` and read its instructions around the replay
(results/redis3-2026-11-30-s8.md shows how). A library (files whose op loop is `run`, as
src/store/redis/scripts.rs loads them) runs by EVALSHA of the text banditd sends as a script,
or with --fcall as the function banditd loads (FUNCTION LOAD before the replay, then FCALL).
"""
import os
import struct
import socket
import sys
import time

args = [a for a in sys.argv[1:] if not a.startswith("--")]
LEGACY_OPS = "--legacy-ops" in sys.argv
ZSET_INDEX = "--zset-index" in sys.argv
WAIT = "--wait" in sys.argv
FILL = int(sys.argv[sys.argv.index("--fill") + 1]) if "--fill" in sys.argv else 1000
if "--fill" in sys.argv:
    args.remove(str(FILL))
# --now MS: the clock of every unit (and their names) fixed, so that two scripts given the
# same replay can be compared byte for byte by their AOFs.
NOW = int(sys.argv[sys.argv.index("--now") + 1]) if "--now" in sys.argv else None
if NOW is not None:
    args.remove(str(NOW))
port, lua_dir, calls, per = int(args[0]), args[1], int(args[2]), int(args[3])
parts = [f for f in ("apply.lua", "apply_rewards.lua", "apply_ops.lua")
         if os.path.exists(os.path.join(lua_dir, f))]
source = "\n".join(open(os.path.join(lua_dir, f)).read() for f in parts)
# Sticky ops packed in one string (op N) and op P's units packed, as call.rs sends them since
# they are; scripts before that take them as arguments (op I, op S per shard switch).
PACKED = "op == 'N'" in source
sock = socket.create_connection(("127.0.0.1", port))
reader = sock.makefile("rb")


def encode(*items):
    out = [b"*%d\r\n" % len(items)]
    for item in items:
        item = item if isinstance(item, bytes) else str(item).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(out)


def read():
    line = reader.readline()
    kind = line[:1]
    if kind in (b"+", b":"):
        return line[1:-2]
    if kind == b"-":
        sys.exit(line.decode())
    if kind == b"$":
        n = int(line[1:-2])
        return None if n < 0 else reader.read(n + 2)[:-2]
    if kind == b"*":
        return [read() for _ in range(int(line[1:-2]))]
    sys.exit(f"unexpected reply {line!r}")


def command(*items):
    sock.sendall(encode(*items))
    return read()


def shard_of(unit):
    """layout::shard_of: FNV-1a over 8 shards."""
    h = 0xCBF29CE484222325
    for byte in unit.encode():
        h = ((h ^ byte) * 0x100000001B3) & (2**64 - 1)
    return h % 8


def info():
    fields = dict(line.split(":", 1) for line in command("INFO", "all").decode().split("\r\n")
                  if ":" in line)
    stats = dict(p.split("=") for p in fields.get("cmdstat_" + call[0].lower(),
                                                  "calls=0,usec=0").split(","))
    cpu = float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])
    return cpu, int(stats["usec"]), int(fields["aof_current_size"])


# A library (src/store/redis/scripts.rs): its script form, or its function with --fcall.
LIBRARY = "local function run(keys, argv)" in source
FCALL = "--fcall" in sys.argv
if FCALL and not LIBRARY:
    sys.exit("--fcall needs a library (scripts whose op loop is `run`)")
if FCALL:
    command("FUNCTION", "LOAD", "REPLACE", "#!lua name=banditd_replay\n" + source
            + "\nredis_api().register_function('banditd_apply_replay', run)\n")
    call = ["FCALL", "banditd_apply_replay"]
else:
    if LIBRARY:
        source = ("local eval_keys, eval_argv = KEYS, ARGV\n" + source
                  + "\nreturn run(eval_keys, eval_argv)\n")
    call = ["EVALSHA", command("SCRIPT", "LOAD", source).decode()]
tag = "{bd:load-sticky:1:%d}".__mod__
index = ":n" if ZSET_INDEX else ":p"
now = NOW if NOW is not None else int(time.time() * 1000)
next_unit = now * 100  # new unit names on every run


def shard_keys(shard):
    t = tag(shard)
    return [t + ":u", t + ":a", t + ":t", t + ":x", t + ":r", t + index]


def text(value):
    value = value if isinstance(value, bytes) else str(value).encode()
    return struct.pack("<I", len(value)) + value


def build():
    global next_unit
    units = []
    for _ in range(per):
        unit = "unit-%015d" % next_unit
        next_unit += 1
        units.append((shard_of(unit), unit))
    first = units[0][0]
    keys = shard_keys(first) + [tag(first) + ":d"]
    firsts, current, ops, prefetch, sets, packed = {first: 1}, first, [], {}, {}, []
    for n, (shard, unit) in enumerate(units):
        if shard not in firsts:
            firsts[shard] = len(keys) + 1
            keys += shard_keys(shard)
        if shard != current and not PACKED:
            ops += ["S", firsts[shard]]
            current = shard
        prefetch.setdefault(firsts[shard], []).append(unit)
        v = "abc"[n % 3]
        shares = ["a", 333334 if v == "a" else 333333, "b", 333333, "c", 333333]
        if LEGACY_OPS:
            ops += ["I", unit, "", v, now, "0.3333333333333333", now, "", 3] + shares
        else:
            if v not in sets:
                sets[v] = str(len(sets) + 1)
                ops += ["W", sets[v], v, now, "", 3] + shares
            if PACKED:
                packed.append(b"I" + struct.pack("<I", firsts[shard]) + text(unit) + text("")
                              + text("%s\t%d\t0.3333333333333333\t" % (v, now)) + text(sets[v]))
            else:
                ops += ["I", unit, "", now, "0.3333333333333333", sets[v]]
    head = ["5000", "60000"]
    for index_of_first, names in prefetch.items():
        if PACKED:
            head += ["P", index_of_first, len(names), b"".join(text(n) for n in names)]
        else:
            head += ["P", index_of_first, len(names)] + names
    return keys, head + ops + (["N", b"".join(packed)] if PACKED else [])


for shard in range(8):
    for first in range(0, FILL, 500):
        fields = []
        for i in range(first, min(FILL, first + 500)):
            fields += ["fill-%d-%d" % (shard, i), "a\t%d\t0.3333333333333333\t" % now]
        command("HSET", tag(shard) + ":r", *fields)
built = [build() for _ in range(calls)]
if WAIT:
    print("READY", file=sys.stderr, flush=True)
    sys.stdin.readline()
before, start = info(), time.time()
for keys, argv in built:
    command(*call, len(keys), *keys, *argv)
after = info()
total = calls * per
print(f"units={total} per_call={per} cpu_us_per_unit={(after[0] - before[0]) / total * 1e6:.2f} "
      f"script_us_per_unit={(after[1] - before[1]) / total:.2f} "
      f"aof_bytes_per_unit={(after[2] - before[2]) / total:.0f} wall_s={time.time() - start:.2f}")
