#!/usr/bin/env python3
"""Replays bulk reward commits of apply.lua (op B) into a running redis-server, without banditd.

    benches/load/redis_reward_replay.py PORT LUA_DIR EVENTS [--per N] [--dups F] [--expected]
                                        [--no-setup] [--seed S] [--retried] [--occurred]
                                        [--fcall] [--judged] [--prefetch] [--commands]
                                        [--watch]

What `run.sh --redis --scenarios events_bulk` makes banditd send on a single primary
(src/store/redis/direct.rs; op B as src/store/redis/call_direct.rs packs it, or as earlier
builds did, told apart by the script's text): calls of PER (1,000) unit rewards of the
3-arm `load-sticky` experiment, each for a pre-assigned, never rewarded unit (records in the
hash layout of src/store/redis/layout.rs, as `banditd-fill` writes them), 36-byte event ids.
`--dups F`: that share of each call's events repeats an id of an earlier call (judged `D`).
`--retried`: the calls are applied before the measured replay, which resends them (all
duplicates). `--occurred`: every event says when it occurred (half a second after its
assignment), as events with a timestamp do; by default none does. `--expected`: each reward carries the record a replica's cache would hold (`judge_known`); the
bench's banditd has none for the pre-filled units, so by default none is sent.
LUA_DIR holds the script files (apply.lua, apply_rewards.lua, apply_ops.lua). The setup (the
units' records and the arms' counters) runs first unless --no-setup; then the script is loaded,
and the tool prints `READY` on stderr and waits for a line on stdin before the replay (so
`callgrind_control -z` can zero the counts in between; pipe `yes` for no wait). A library
(files whose op loop is `run`, as src/store/redis/scripts.rs loads them) runs by EVALSHA of
the text banditd sends as a script, or with --fcall as the function banditd loads (FUNCTION
LOAD before the replay, then FCALL).
`--judged` (a script that takes kind V): each reward as banditd judges it itself, with the
record it expects (verified by the script) and the call's predicted credits (op G): a fresh
id as kind V; a duplicate (--dups) names a unit its first event rewarded, which banditd reads
as rewarded, so it goes as kind u, in runs of one kind as banditd packs them.
`--prefetch`: before each call, the HMGETs of its units' records (one per records shard,
pipelined), what banditd would read to judge rewards of units its cache does not hold;
counted with the call. `--commands`: no script at all: each call's reads and writes as the
`--judged` script makes them (HMGET of the records and SMISMEMBER of the digests, HSET of the
credited records, SADD and APPEND of the applied digests, the lists' index and expiries, the
counters and delay bins by HINCRBY), sent as plain commands in one MULTI/EXEC, their outcomes
known to the replay: what Redis's own commands cost for a reward, without Lua. `--commands
--watch`: the commands of banditd's transaction (src/store/redis/tx_plan.rs): the reads after
a WATCH of their keys in one pipeline, then MULTI, the writes, EXEC (see `commands_of`).

Prints the replay's events, applied and duplicate counts, redis-server's CPU (INFO cpu), the
commands its scripts ran and the AOF bytes per event. For exact, load-independent counts run
redis-server under `valgrind --tool=callgrind` (benches/load/redis_reward_cost.sh does).
"""
import argparse
import hashlib
import os
import random
import re
import struct
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("lua_dir")
parser.add_argument("events", type=int)
parser.add_argument("--per", type=int, default=1000)
parser.add_argument("--dups", type=float, default=0.0)
parser.add_argument("--expected", action="store_true")
parser.add_argument("--no-setup", action="store_true")
parser.add_argument("--seed", type=int, default=7)
parser.add_argument("--retried", action="store_true")
parser.add_argument("--occurred", action="store_true")
parser.add_argument("--fcall", action="store_true")
parser.add_argument("--judged", action="store_true")
parser.add_argument("--prefetch", action="store_true")
parser.add_argument("--commands", action="store_true")
parser.add_argument("--watch", action="store_true")
opts = parser.parse_args()
port, lua_dir, events = opts.port, opts.lua_dir, opts.events
PER, DUPS, EXPECTED, SETUP = opts.per, opts.dups, opts.expected, not opts.no_setup
rng = random.Random(opts.seed)
WINDOW, HOUR, NOW = 7 * 86400000, 3600000, 1796000000000
VARIANTS = ["control", "bold", "question"]

script = b"".join(open(os.path.join(lua_dir, f), "rb").read()
                  for f in ("apply.lua", "apply_rewards.lua", "apply_ops.lua")
                  if os.path.exists(os.path.join(lua_dir, f)))
# Scripts that look the digests up in op Q and read the units' records in op P before op B
# (one pass over the rewards) take each reward's kind first and its id last; earlier ones
# (rbulk2's) the id and kind in its head.
ONE_PASS = b"digest_format" in script
# Scripts that take op P's units packed in one string (`I4c0` each) rather than as arguments.
PACKED_P = b"name_format" in script
# Scripts that take a unit reward without an expected record as kind `u` (its last three
# fields left out) rather than as `U` with them empty.
SHORT_U = b"kind == 'u'" in script
# Scripts that take op B's rewards in runs of one kind (the kind and count first, no kind and
# length per reward).
RUNS = b"runs of one kind" in script
# Scripts whose op B is read by `judge_packed` (apply_rewards.lua): runs carry the arrival
# time, window and half-life; a reward names its id and its unit by their places in ops Q and
# P (which also carry the ids), its amount and timestamp as doubles; one reply string.
PLACES = b"judge_packed" in script
# Scripts that take rewards banditd judged (kind V: the record it expects, verified by one
# comparison, and the run's predicted credits in op G).
JUDGED = b"kind == 'V'" in script
if opts.judged and not JUDGED:
    sys.exit("--judged needs a script that takes kind V rewards")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Resp  # noqa: E402 (beside this file)

connection = Resp(port)
read, cmd, pipelined = connection.read, connection.cmd, connection.pipelined


def info(section):
    text = cmd("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def shard(name):
    """layout::shard_of: FNV-1a over 8 shards."""
    h = 0xCBF29CE484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % 8


def tag(s):
    return "{bd:load-sticky:1:%d}" % s


def text(value):
    value = value.encode()
    return struct.pack("<I", len(value)) + value


units = ["ev-%d" % i for i in range(events)]
assigned = NOW - 1000


def record_of(i):
    return "%s\t%d\t0.3333333333333333\t" % (VARIANTS[i % 3], assigned)


if SETUP:
    by_shard = {}
    for i, unit in enumerate(units):
        by_shard.setdefault(shard(unit), []).append((unit, record_of(i)))
    for s, records in by_shard.items():
        for at in range(0, len(records), 500):
            chunk = records[at:at + 500]
            cmd("HSET", tag(s) + ":r", *[x for pair in chunk for x in pair])
            cmd("ZADD", tag(s) + ":n", *[x for unit, _ in chunk for x in ("0", unit)])
    for v in VARIANTS:
        cmd("HSET", tag(0) + ":a", "n|" + v, events // 3, "dt|" + v, assigned, "h|" + v, "-")
# A library (src/store/redis/scripts.rs): its script form, or its function with --fcall.
LIBRARY = b"local function run(keys, argv)" in script
if opts.fcall and not LIBRARY:
    sys.exit("--fcall needs a library (scripts whose op loop is `run`)")
if opts.fcall:
    cmd("FUNCTION", "LOAD", "REPLACE", b"#!lua name=banditd_replay\n" + script
        + b"\nredis_api().register_function('banditd_apply_replay', run)\n")
    invoke = ["FCALL", "banditd_apply_replay"]
else:
    if LIBRARY:
        script = (b"local eval_keys, eval_argv = KEYS, ARGV\n" + script
                  + b"\nreturn run(eval_keys, eval_argv)\n")
    invoke = ["EVALSHA", cmd("SCRIPT", "LOAD", script).decode()]


def declare(event_id, unit, end, key, dirs, lists, shards):
    """The KEYS a reward of `event_id` to `unit` names, declared on first use as the call
    declares them (its id shard's five keys, its digest list, its records shard's six): the id
    shard, the list's key, the records shard and the id's digest."""
    home = shard(event_id)
    if home not in dirs:
        dirs[home] = key("{bd:load-sticky:e%d}:d" % home)
        key("{bd:load-sticky:e%d}:w" % home)
        key("{bd:load-sticky:e%d}:due" % home)
        key("{bd:load-sticky:e%d}:h" % home)
        key("{bd:load-sticky:e%d}:hw" % home)
    list_key = "{bd:load-sticky:e%d}:hl:%d" % (home, end)
    if list_key not in lists:
        lists[list_key] = (key(list_key), dirs[home])
    s = shard(unit)
    if s not in shards:
        shards[s] = key(tag(s) + ":u")
        for suffix in (":a", ":t", ":x", ":r", ":p"):
            key(tag(s) + suffix)
    return home, list_key, s, hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def call(batch, now):
    """One call of `batch` ((event id, unit index) pairs), packed as Call::direct_reward."""
    first = shard(units[batch[0][1]])
    keys = [tag(first) + suffix for suffix in (":u", ":a", ":t", ":x", ":r", ":p", ":d")]

    def key(name):
        keys.append(name)
        return len(keys)
    shards, dirs, lists, blob = {first: 1}, {}, {}, bytearray()
    digests, prefetch = {}, {}
    end = -(-(now + WINDOW) // HOUR) * HOUR
    keep = end - now + 86400000
    if PLACES:
        return placed_call(batch, now, keys, key, first)
    for event_id, i in batch:
        unit = units[i]
        home, list_key, s, digest = declare(event_id, unit, end, key, dirs, lists, shards)
        if ONE_PASS:
            digests.setdefault(dirs[home], bytearray()).extend(digest)
            prefetch.setdefault(shards[s], []).append(unit)
            kind = b"u" if SHORT_U and not EXPECTED else b"U"
            body = (kind + struct.pack("<I", dirs[home]) + digest
                    + struct.pack("<II", shards[s], lists[list_key][0]))
        else:
            head = text(event_id) + digest + struct.pack("<II", shards[s], lists[list_key][0])
            body = struct.pack("<I", dirs[home]) + head + b"U"
        occurred = str(assigned + 500) if opts.occurred else ""
        body += (text(unit) + text("1000000") + text(occurred)
                + struct.pack("<dd", float(now), float(WINDOW)) + text(""))
        if EXPECTED:
            body += text(record_of(i)) + text(VARIANTS[i % 3]) + struct.pack("<d", float(assigned))
        elif not SHORT_U:
            body += text("") + text("") + struct.pack("<d", 0.0)
        if ONE_PASS:
            body += text(event_id)
        if RUNS:
            blob += body[1:]
        else:
            blob += struct.pack("<I", len(body) + 4) + body
    argv = ["60000", "86400000"]
    for index_of_first, names in prefetch.items():
        for at in range(0, len(names), 512):
            chunk = names[at:at + 512]
            if PACKED_P:
                argv += ["P", index_of_first, len(chunk), b"".join(text(n) for n in chunk)]
            else:
                argv += ["P", index_of_first, len(chunk)] + chunk
    for index in dirs.values():
        argv += ["Q", index, keep] + ([bytes(digests[index])] if ONE_PASS else [])
    for index, directory in lists.values():
        argv += ["L", index, directory, end, keep]
    if RUNS:
        blob = kind + struct.pack("<I", len(batch)) + blob
    return keys, argv + ["B", bytes(blob)]


def placed_call(batch, now, keys, key, first):
    """One call as `Call::direct_reward` packs it for `judge_packed`."""
    shards, dirs, lists, blob = {first: 1}, {}, {}, bytearray()
    digests, ids, prefetch = {}, {}, {}
    end = -(-(now + WINDOW) // HOUR) * HOUR
    keep = end - now + 86400000
    kind = b"U" if EXPECTED else b"u"
    groups, side = {}, bytearray()
    # (kind, bytes) per reward, made into runs of one kind at the end: with --judged, banditd
    # sends as kind V only a reward it judged applied, the call's first of its id and unit
    # (src/store/redis/call_judged.rs); a duplicate of an earlier call's id names a unit that
    # id rewarded, which banditd reads as rewarded and sends as kind u.
    rewards, named = [], set()
    for event_id, i in batch:
        unit = units[i]
        home, list_key, s, digest = declare(event_id, unit, end, key, dirs, lists, shards)
        digests.setdefault(dirs[home], bytearray()).extend(digest)
        ids.setdefault(dirs[home], bytearray()).extend(text(event_id))
        listed = prefetch.setdefault(shards[s], [])
        listed.append(unit)
        occurred = float(assigned + 500) if opts.occurred else -1.0
        if opts.judged and event_id not in judged_ids and unit not in named:
            judged_ids.add(event_id)
            named.add(unit)
            # The credit banditd predicts: its group (variant, delay bin), in op G.
            group = (VARIANTS[i % 3], delay_bin(now - assigned))
            if group not in groups:
                groups[group] = [len(groups) + 1, 0.0, 0.0, 0]
            g = groups[group]
            g[1] += 1000000.0
            g[2] += 1.0
            g[3] += 1
            rewards.append((b"V", struct.pack(
                "<IIIIId", dirs[home], len(digests[dirs[home]]) // 8, shards[s], len(listed),
                lists[list_key][0], 1000000.0) + text(record_of(i))))
            side += struct.pack("<Idd", g[0], 1.0, occurred)
            continue
        named.add(unit)
        one = struct.pack("<IIIIIdd", dirs[home], len(digests[dirs[home]]) // 8, shards[s],
                          len(listed), lists[list_key][0], 1000000.0, occurred)
        if EXPECTED:
            one += text(record_of(i)) + text(VARIANTS[i % 3]) + struct.pack("<d", float(assigned))
        rewards.append((kind, one))
    at = 0
    while at < len(rewards):
        run = at
        while run < len(rewards) and rewards[run][0] == rewards[at][0]:
            run += 1
        blob += rewards[at][0] + struct.pack("<Idd", run - at, float(now), float(WINDOW)) + text("")
        blob += b"".join(one for _, one in rewards[at:run])
        at = run
    argv = ["60000", "86400000"]
    for index_of_first, names in prefetch.items():
        for at in range(0, len(names), 512):
            chunk = names[at:at + 512]
            argv += ["P", index_of_first, len(chunk), b"".join(text(n) for n in chunk)]
    for index in dirs.values():
        argv += ["Q", index, keep, bytes(digests[index]), bytes(ids[index])]
    for index, directory in lists.values():
        argv += ["L", index, directory, end, keep]
    if opts.judged and groups:
        packed = struct.pack("<I", len(groups))
        for (variant, bin_), (_, micro, dr, count) in groups.items():
            packed += (text(variant) + struct.pack("<I", bin_) + struct.pack("<d", float(now))
                       + text("") + struct.pack("<ddI", micro, dr, count))
        argv += ["G", packed, bytes(side)]
    return keys, argv + ["B", bytes(blob)]


def delay_bin(delay):
    """stats::delay_bin: the fine edges of the first hour, then hours."""
    delay = max(delay, 0)
    if delay >= HOUR:
        return 8 + delay // HOUR - 1
    return sum(1 for edge in (60000, 120000, 300000, 600000, 1200000, 1800000, 2700000)
               if edge <= delay)


expiry_of = {}  # --watch: each key's expiry as the replay set it (its clock)


def commands_of(batch, now, applied, watch=False):
    """The commands of `--commands` for one call of `batch`; `applied`: the ids applied in
    it (the others are duplicates). `watch` (--watch): as banditd's transaction sends them
    (src/store/redis/tx_plan.rs): first a pipeline of UNWATCH, WATCH of every key a decision
    reads and those reads (EXISTS of the legacy records, directories and due indexes, HMGET of
    the records, SMISMEMBER of the digests, PTTL of the digest sets and lists, HGETALL of the
    arms), returned as the first of two lists, then MULTI, the writes alone (the arms' decay
    time and marker in one HSET, HSETNX of the start, HINCRBY of the change counter), EXEC."""
    end = -(-(now + WINDOW) // HOUR) * HOUR
    keep = end - now + 86400000
    read, written, digests, kept, credits = {}, {}, {}, {}, {}
    for event_id, i in batch:
        home = shard(event_id)
        digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
        read.setdefault(shard(units[i]), []).append(units[i])
        digests.setdefault(home, []).append(digest)
        if event_id in applied:
            kept.setdefault(home, []).append(digest)
            written.setdefault(shard(units[i]), []).extend(
                [units[i], record_of(i) + "1000000\t%d" % now])
            v = VARIANTS[i % 3]
            credits[v] = credits.get(v, 0) + 1000000
    out = [["MULTI"]]
    reads = []
    if watch:
        names = {s: list(dict.fromkeys(names)) for s, names in read.items()}
        ends = sorted({end})
        watched, exists = [], []
        for s in sorted(names):
            watched += [tag(s) + ":r", tag(s) + ":u"]
            exists.append(tag(s) + ":u")
        for home in sorted(digests):
            e = "{bd:load-sticky:e%d}" % home
            watched += [e + ":h", e + ":d", e + ":due"]
            exists += [e + ":d", e + ":due"]
        lists = ["{bd:load-sticky:e%d}:hl:%d" % (home, x) for home in sorted(digests) for x in ends]
        watched += lists + [tag(shard(units[batch[0][1]])) + ":a"]
        reads = [["UNWATCH"], ["WATCH"] + watched, ["EXISTS"] + exists]
        reads += [["HMGET", tag(s) + ":r"] + names[s] for s in sorted(names)]
        for home in sorted(digests):
            reads.append(["SMISMEMBER", "{bd:load-sticky:e%d}:h" % home] + digests[home])
            reads.append(["PTTL", "{bd:load-sticky:e%d}:h" % home])
        reads += [["PTTL", key] for key in lists]
        reads.append(["HGETALL", tag(shard(units[batch[0][1]])) + ":a"])
    else:
        for s, names in sorted(read.items()):
            for at in range(0, len(names), 512):
                out.append(["HMGET", tag(s) + ":r"] + names[at:at + 512])
        for home, listed in sorted(digests.items()):
            for at in range(0, len(listed), 512):
                out.append(["SMISMEMBER", "{bd:load-sticky:e%d}:h" % home]
                           + listed[at:at + 512])
    for s, pairs in sorted(written.items()):
        for at in range(0, len(pairs), 1024):
            out.append(["HSET", tag(s) + ":r"] + pairs[at:at + 1024])
    for home, listed in sorted(kept.items()):
        dig, lst = "{bd:load-sticky:e%d}:h" % home, "{bd:load-sticky:e%d}:hl:%d" % (home, end)
        out.append(["SADD", dig] + listed)
        out.append(["APPEND", lst, b"".join(listed)])
        out.append(["ZADD", "{bd:load-sticky:e%d}:hw" % home, end, lst])
        for key in (lst, dig):
            # --watch: banditd sets an expiry only when the one read is shorter than `keep`
            # (`keep_at_least`), as the replay's clock tells.
            if not watch or expiry_of.get(key, 0) - now < keep:
                out.append(["PEXPIRE", key, keep + HOUR])
                expiry_of[key] = now + keep + HOUR
    arms, delays = tag(shard(units[batch[0][1]])) + ":a", tag(shard(units[batch[0][1]])) + ":d"
    for v, micro in credits.items():
        out.append(["HINCRBY", arms, "r|" + v, micro])
        out.append(["HSET", arms, "h|" + v, "-", "dt|" + v, now] if watch
                   else ["HSET", arms, "dt|" + v, now, "h|" + v, "-"])
        if not watch:
            out.append(["HINCRBY", delays, "d|%d|%s" % (delay_bin(now - assigned), v), micro])
    if watch:
        # banditd adds a delay bin per (bin, variant) after the arms' counters.
        for v, micro in credits.items():
            out.append(["HINCRBY", delays, "d|%d|%s" % (delay_bin(now - assigned), v), micro])
    if credits:
        if watch:
            out.append(["HSETNX", arms, "s", now])
            out.append(["HINCRBY", arms, "v", 1])
        else:
            out.append(["HINCRBY", arms, "v", 1])
            out.append(["HSETNX", arms, "s", now])
    out.append(["EXEC"])
    return (reads, out) if watch else out


def outcomes(reply):
    """The replies' first bytes: one string per reward, or (PLACES) one string of them all,
    a byte per reward (>= 128: applied), then the credited variants' names."""
    if not PLACES:
        return [r[:1] for r in reply]
    codes = reply[-1][:calls_sizes.pop(0)]
    return [b"A" if c >= 128 or c == ord("V") else bytes([c]) for c in codes]


# The calls, built before the replay so the measured part is Redis's alone. A duplicate
# repeats an id of an earlier call (applied there).
calls, sizes, sent, fresh, total, reads = [], [], [], 0, 0, []
seen_ids, applied_n = set(), 0
judged_ids = set()  # --judged: the ids banditd would have judged applied so far
while fresh < events:
    earlier, batch = len(sent), []
    for _ in range(PER):
        if earlier and rng.random() < DUPS:
            batch.append(sent[rng.randrange(earlier)])
        elif fresh < events:
            batch.append(("%08x-0000-4000-8000-%012x" % (fresh >> 48, fresh), fresh))
            sent.append(batch[-1])
            fresh += 1
    total += len(batch)
    sizes.append(len(batch))
    # --prefetch: the records banditd would read before the call (one HMGET per records
    # shard, pipelined), to judge its rewards itself.
    by_shard = {}
    for _, i in batch:
        by_shard.setdefault(shard(units[i]), []).append(units[i])
    reads.append([["HMGET", tag(s) + ":r"] + names for s, names in sorted(by_shard.items())])
    if opts.commands:
        fresh_ids = {event_id for event_id, _ in batch} - seen_ids
        calls.append(commands_of(batch, NOW + 1000 * len(calls), fresh_ids, opts.watch))
        seen_ids |= fresh_ids
        applied_n += len(fresh_ids)
        continue
    calls.append(call(batch, NOW + 1000 * len(calls)))

# --retried: the calls are applied once before the measured replay, which resends them all (a
# client retrying its batches: every event a duplicate).
if opts.retried and not opts.commands:
    for keys, argv in calls:
        cmd(*invoke, len(keys), *keys, *argv)
print("READY", file=sys.stderr, flush=True)
sys.stdin.readline()
cmd("CONFIG", "RESETSTAT")
cpu0 = info("cpu")
wall0 = time.time()
aof0 = int(info("persistence").get("aof_current_size", 0))
replies = {}
calls_sizes = list(sizes)
for made, prefetch in zip(calls, reads):
    if opts.prefetch:
        pipelined(prefetch)
    if opts.commands and opts.watch:
        pipelined(made[0])
        pipelined(made[1])
        continue
    if opts.commands:
        pipelined(made)
        continue
    keys, argv = made
    for first in outcomes(cmd(*invoke, len(keys), *keys, *argv)):
        replies[first] = replies.get(first, 0) + 1
if opts.commands:
    replies = {b"A": applied_n, b"D": total - applied_n}
wall = time.time() - wall0
cpu1 = info("cpu")
aof1 = int(info("persistence").get("aof_current_size", 0))
stats = cmd("INFO", "commandstats").decode()
commands = sum(int(m) for m in re.findall(
    r"cmdstat_(?!evalsha|fcall|info|config)[^:]*:calls=(\d+)", stats))
cpu = sum(float(cpu1[k]) - float(cpu0[k]) for k in ("used_cpu_user", "used_cpu_sys"))
print("events=%d calls=%d applied=%d duplicates=%d other=%d cpu_us_per_event=%.2f "
      "commands_per_event=%.4f aof_bytes_per_event=%.1f wall_us_per_event=%.2f" % (
          total, len(calls), replies.get(b"A", 0), replies.get(b"D", 0),
          total - replies.get(b"A", 0) - replies.get(b"D", 0), cpu / total * 1e6,
          commands / total, (aof1 - aof0) / total, wall / total * 1e6))
