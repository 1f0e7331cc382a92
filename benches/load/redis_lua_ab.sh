#!/usr/bin/env bash
# Redis's CPU per event of bulk ingest's script, A/B between two versions of apply.lua +
# apply_rewards.lua + apply_ops.lua, without banditd: the batches are replayed straight into
# redis-server, packed as
# src/store/redis/call.rs packs them (`Call::direct_reward`, op B: 1,000 unit rewards per call,
# every unit's record in the hash layout of src/store/redis/layout.rs, 36-byte ids), so
# only the script differs between the sides and nothing of HTTP or banditd's scheduling.
#
#   benches/load/redis_lua_ab.sh [--events N] [--rounds R] REV_A [REV_B]
#
# For revisions before d355316 only (it says so and stops for later ones, whose op B it does
# not pack; benches/load/redis_reward_cost.sh replays the current packing).
#
# REV_A / REV_B: git revisions (REV_B defaults to the worktree's files). Each round runs A then
# B, each on a fresh redis-server (appendonly yes, appendfsync always; temp dir, free port):
# N events applied (every one credits its unit and keeps its id), then the same N again (every
# one a duplicate). Per event: redis-server's CPU (INFO cpu, user + sys, around each EVALSHA),
# the commands its scripts ran, the AOF bytes; and whether the two sides' AOFs are the same
# bytes (Redis's own clock in PEXPIREAT aside), which says a change wrote exactly what the
# other did. CPU still moves with the machine's load (give `uptime`); the counts do not.
# Environment: REDIS_PORT (18591; the next port is used too).

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"

EVENTS=20000
ROUNDS=3
while (($#)); do
    case $1 in
    --events) EVENTS=${2:?--events needs a number}; shift ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
    esac
    shift
done
REV_A=${1:?give REV_A (see --help)}
REV_B=${2:-}
for value in "$EVENTS" "$ROUNDS"; do
    [[ $value =~ ^[0-9]+$ ]] && ((value > 0)) || die "--events and --rounds take positive whole numbers"
done
command -v redis-server >/dev/null || die "needs redis-server (apt-get install -y redis-server)"
command -v python3 >/dev/null || die "needs python3"
REDIS_PORT=${REDIS_PORT:-18591}
for port in "$REDIS_PORT" "$((REDIS_PORT + 1))"; do
    port_free "$port" || die "port $port is in use; set REDIS_PORT"
done

# The replay packs op B as the scripts took it before d355316 (op B naming each reward's id
# and unit by their places in ops Q and P, one string answered), and does not speak that
# format or later ones. For those revisions, redis_reward_cost.sh replays the current packing
# (redis_reward_replay.py) and counts redis-server's instructions per event.
NEW_FORMAT=d355316
for rev in "$REV_A" "$REV_B"; do
    if [[ -z $rev ]] || git -C "$ROOT" merge-base --is-ancestor "$NEW_FORMAT" "$rev" 2>/dev/null; then
        die "${rev:-the worktree} packs op B as $NEW_FORMAT changed it, which this replay does not speak; compare such revisions with benches/load/redis_reward_cost.sh"
    fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-redis-lua.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# side NAME REV: the script files of REV (the worktree's when REV is empty) in $WORK/NAME;
# apply_rewards.lua (split out of apply.lua later) is left empty for revisions before it.
side() {
    mkdir -p "$WORK/$1"
    for file in apply.lua apply_rewards.lua apply_ops.lua; do
        if [[ -z $2 ]]; then
            cp "$ROOT/src/store/redis/$file" "$WORK/$1/"
        elif [[ $file == apply_rewards.lua ]]; then
            git -C "$ROOT" show "$2:src/store/redis/$file" >"$WORK/$1/$file" 2>/dev/null ||
                : >"$WORK/$1/$file"
        else
            git -C "$ROOT" show "$2:src/store/redis/$file" >"$WORK/$1/$file" ||
                die "no src/store/redis/$file at $2"
        fi
    done
}
side a "$REV_A"
side b "$REV_B"

cat >"$WORK/replay.py" <<'PY'
import hashlib, os, re, struct, subprocess, sys, tempfile, time
lua_dir, port, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, sys.argv[5])
from resp import Resp  # benches/load/resp.py
BATCH, WINDOW, HOUR, NOW = 1000, 7 * 86400000, 3600000, 1796000000000
script = b''.join(open(os.path.join(lua_dir, f), 'rb').read() for f in ('apply.lua', 'apply_rewards.lua', 'apply_ops.lua'))
# Scripts that keep applied ids as 8-byte digests (layout::event_digest_key) take the digest in
# each packed reward and no retention end; earlier ones the retention end.
DIGESTS = b'SMISMEMBER' in script
# Scripts with `judge_known` take the record banditd expects, its variant and assignment time
# after each unit reward (the record as stored here: every one matches).
EXPECTED = b'judge_known' in script
# Scripts that look the digests up in op Q and read the units' records in op P before op B
# take each reward's kind first and its id last, with the digests also listed per directory.
ONE_PASS = b'digest_format' in script
# Scripts that take op P's units packed in one string (`I4c0` each) rather than as arguments.
PACKED_P = b'name_format' in script
work = tempfile.mkdtemp(dir=os.path.dirname(out))
server = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--dir', work,
                           '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
                           '--auto-aof-rewrite-percentage', '0'], stdout=subprocess.DEVNULL)
try:
    for _ in range(200):
        try:
            cmd = Resp(port).cmd
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit('redis-server did not answer')

    def cpu():
        text = cmd('INFO', 'cpu').decode()
        fields = dict(line.split(':') for line in text.split('\r\n') if ':' in line)
        return float(fields['used_cpu_user']) + float(fields['used_cpu_sys'])

    def shard(name):  # layout::shard_of
        h = 0xcbf29ce484222325
        for byte in name.encode():
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return h % 8

    def tag(s):
        return '{bd:load-sticky:1:%d}' % s

    def text(value):
        value = value.encode()
        return struct.pack('<I', len(value)) + value

    def aof_bytes():
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(work) for f in fs)

    sha = cmd('SCRIPT', 'LOAD', script).decode()
    units = ['unit-%010d' % i for i in range(n)]
    variants = ['control', 'bold', 'question']
    by_shard, expected_records = {}, []
    for i, unit in enumerate(units):
        record = '%s\t%d\t0.3333333333333333\t' % (variants[i % 3], NOW - 1000)
        expected_records.append(record)
        by_shard.setdefault(shard(unit), []).append((unit, record))
    for s, records in by_shard.items():
        for at in range(0, len(records), 500):
            chunk = records[at:at + 500]
            cmd('HSET', tag(s) + ':r', *[x for pair in chunk for x in pair])
            cmd('ZADD', tag(s) + ':n', *[x for unit, _ in chunk for x in ('0', unit)])
    for v in variants:
        cmd('HSET', tag(0) + ':a', 'n|' + v, n // 3, 'dt|' + v, NOW - 1000, 'h|' + v, '-')

    def call(batch, now):
        first = shard(batch[0][1])
        keys = [tag(first) + suffix for suffix in (':u', ':a', ':t', ':x', ':r', ':n', ':d')]
        def key(name):
            keys.append(name)
            return len(keys)
        shards, dirs, lists, blob = {first: 1}, {}, {}, bytearray()
        digests, prefetch = {}, {}
        retain = now + WINDOW
        end = -(-retain // HOUR) * HOUR
        keep = end - now + 86400000
        for event_id, unit in batch:
            home = shard(event_id)
            if home not in dirs:
                dirs[home] = key('{bd:load-sticky:e%d}:d' % home)
                key('{bd:load-sticky:e%d}:w' % home)
                key('{bd:load-sticky:e%d}:due' % home)
                if DIGESTS:
                    key('{bd:load-sticky:e%d}:h' % home)
                    key('{bd:load-sticky:e%d}:hw' % home)
            list_key = '{bd:load-sticky:e%d}:%s:%d' % (home, 'hl' if DIGESTS else 'l', end)
            if list_key not in lists:
                lists[list_key] = (key(list_key), dirs[home])
            s = shard(unit)
            if s not in shards:
                shards[s] = key(tag(s) + ':u')
                for suffix in (':a', ':t', ':x', ':r', ':n'):
                    key(tag(s) + suffix)
            digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
            if ONE_PASS:
                digests.setdefault(dirs[home], bytearray()).extend(digest)
                prefetch.setdefault(shards[s], []).append(unit)
                body = b'U' + struct.pack('<I', dirs[home]) + digest + struct.pack('<II', shards[s], lists[list_key][0])
            else:
                if DIGESTS:
                    head = text(event_id) + digest + struct.pack('<II', shards[s], lists[list_key][0])
                else:
                    head = text(event_id) + struct.pack('<II', shards[s], lists[list_key][0]) + text(str(retain))
                body = struct.pack('<I', dirs[home]) + head + b'U'
            body += (text(unit) + text('1000000') + text('')
                    + struct.pack('<dd', float(now), float(WINDOW)) + text(''))
            if EXPECTED:
                i = int(event_id[-12:], 16)
                body += (text(expected_records[i]) + text(variants[i % 3]) + struct.pack('<d', float(NOW - 1000)))
            if ONE_PASS:
                body += text(event_id)
            blob += struct.pack('<I', len(body) + 4) + body
        args = ['60000', '86400000']
        for index_of_first, names in prefetch.items():
            for at in range(0, len(names), 512):
                chunk = names[at:at + 512]
                if PACKED_P:
                    args += ['P', index_of_first, len(chunk), b''.join(text(n) for n in chunk)]
                else:
                    args += ['P', index_of_first, len(chunk)] + chunk
        for index in dirs.values():
            args += ['Q', index, keep] + ([bytes(digests[index])] if ONE_PASS else [])
        for index, directory in lists.values():
            args += ['L', index, directory, end, keep]
        return keys, args + ['B', bytes(blob)]

    def phase(expect):
        used = 0.0
        for at in range(0, n, BATCH):
            batch = [('%08x-0000-4000-8000-%012x' % (i >> 48, i), units[i])
                     for i in range(at, min(n, at + BATCH))]
            keys, args = call(batch, NOW + at)
            before = cpu()
            reply = cmd('EVALSHA', sha, len(keys), *keys, *args)
            used += cpu() - before
            wrong = [r for r in reply if r[:1] != expect]
            if wrong:
                sys.exit('expected %s, got %s' % (expect, wrong[:3]))
        return used / n * 1e6

    aof0 = aof_bytes()
    cmd('CONFIG', 'RESETSTAT')
    applied = phase(b'A')
    stats = cmd('INFO', 'commandstats').decode()
    commands = sum(int(m) for m in re.findall(r'cmdstat_(?!evalsha|info|config)[^:]*:calls=(\d+)', stats))
    aof = aof_bytes() - aof0
    # Redis's bytes for the kept ids: every key of the event-id slots, counted exactly.
    id_bytes, cursor = 0, b'0'
    while True:
        cursor, found = cmd('SCAN', cursor, 'MATCH', '{bd:load-sticky:e*', 'COUNT', 1000)
        for name in found:
            id_bytes += int(cmd('MEMORY', 'USAGE', name, 'SAMPLES', 0))
        if cursor == b'0':
            break
    retried = phase(b'D')
    digest = hashlib.sha256()
    for d, _, files in sorted(os.walk(work)):
        for f in sorted(files):
            if '.incr.' in f:
                data = open(os.path.join(d, f), 'rb').read()
                digest.update(re.sub(rb'(PEXPIREAT\r\n\$\d+\r\n[^\r]*\r\n\$\d+\r\n)\d+', rb'\1T', data))
    with open(out, 'w') as result:
        result.write('%.2f %.2f %.3f %.0f %.1f %s\n' % (applied, retried, commands / n, aof / n, id_bytes / n,
                                                   digest.hexdigest()[:12]))
finally:
    server.terminate()
    server.wait()
    subprocess.run(['rm', '-rf', work])
PY

log "$ROUNDS rounds of A (${REV_A}) then B (${REV_B:-worktree}), $(thousands "$EVENTS") events each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | side | applied: CPU µs/event | retried: CPU µs/event | commands/event | AOF bytes/event | Redis bytes per kept id | AOF digest | load average |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
for round in $(seq 1 "$ROUNDS"); do
    for name in a b; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        port=$REDIS_PORT
        [[ $name == b ]] && port=$((REDIS_PORT + 1))
        python3 "$WORK/replay.py" "$WORK/$name" "$port" "$EVENTS" "$WORK/$name.out" "$HERE"
        read -r applied retried commands aof id_bytes digest <"$WORK/$name.out"
        echo "| $round | ${name^^} | $applied | $retried | $commands | $aof | $id_bytes | $digest | $load |"
    done
done
