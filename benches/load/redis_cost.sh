#!/usr/bin/env bash
# Redis's own cost per new sticky unit and per applied event, measured so that the machine's
# load changes the answer as little as possible: redis-server's CPU seconds (INFO cpu,
# used_cpu_user + used_cpu_sys), the commands it ran (INFO commandstats, which counts the
# commands of scripts too) and the bytes its AOF grew by, each over a fixed workload, divided by
# the work done. The counts do not depend on the machine at all; CPU seconds still move with a
# loaded machine's cache and shared cores (by up to a quarter between runs on the 2-core CI box).
#
#   benches/load/redis_cost.sh [--units N] [--connections C] [--batch B] [--profile P] [--no-build]
#                              [--bin PATH]
#
# Starts redis-server (appendonly yes, appendfsync always, noeviction, no automatic AOF rewrite,
# which would shrink the AOF mid-phase; temp dir, free port) and
# one banditd --redis serving benches/load/experiments/load-sticky.yaml (sticky, 3 arms), then
# runs three phases, snapshotting INFO before and after each:
#   units    N new units through GET /v1/experiments/load-sticky/assign (wrk, C connections,
#            unit ids `unit-%010d`); checked: the experiment counts exactly N exposures;
#   events   N events through POST /v1/events (NDJSON, B per request; 36-byte UUID-shaped ids),
#            one per unit, each applied (credits the unit's assignment, keeps the id);
#   retries  the same N events again: every one answered as a duplicate.
# Before the phases, an idle stretch of 5 s measures what the replica costs Redis with no
# traffic (posterior refreshes, replica announcements); that rate times each phase's wall time
# is subtracted from the phase's CPU and commands (the "net" figures; the raw ones are printed
# too). What stays is per unit of work, whatever the machine's load: the CPU figures still move
# a little with cache and frequency effects, the command and AOF counts not at all.
# Memory: used_memory growth per kept event id (with its claim outcome; the credited records'
# growth taken out), as in redis_memory.sh but at this script's smaller N.
# Prints one COST line and a Markdown table. Every process it starts is stopped on exit.
#
# --profile debug (default) uses the debug banditd: Redis's cost does not depend on how banditd
# was compiled, only on the commands it sends; but how many new units share a group commit
# does (a slower server leaves fewer requests waiting per commit), so compare runs of one
# profile and one C, and read the "script calls" column. --bin runs another banditd binary
# (e.g. one built from an earlier commit, to compare), and implies --no-build.
# Environment: CARGO_TARGET_DIR, BANDITD_BIN (as --bin), REDIS_PORT (18579), BANDITD_PORT (18580).

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"

UNITS=20000
CONNECTIONS=16
BATCH=1000
PROFILE=debug
BUILD=1
while (($#)); do
    case $1 in
    --units) UNITS=${2:?--units needs a number}; shift ;;
    --connections) CONNECTIONS=${2:?--connections needs a number}; shift ;;
    --batch) BATCH=${2:?--batch needs a number}; shift ;;
    --profile) PROFILE=${2:?--profile needs debug or release}; shift ;;
    --bin) BANDITD_BIN=${2:?--bin needs a path}; BUILD=0; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
for value in "$UNITS" "$CONNECTIONS" "$BATCH"; do
    [[ $value =~ ^[0-9]+$ ]] && ((value > 0)) || die "--units, --connections and --batch take positive whole numbers"
done
[[ $PROFILE == debug || $PROFILE == release ]] || die "--profile takes debug or release"
REDIS_PORT=${REDIS_PORT:-18579}
BANDITD_PORT=${BANDITD_PORT:-18580}
NICE=0
for port in "$REDIS_PORT" "$BANDITD_PORT"; do
    port_free "$port" || die "port $port is in use; set REDIS_PORT / BANDITD_PORT"
done
command -v redis-server >/dev/null || die "needs redis-server (apt-get install -y redis-server)"
command -v python3 >/dev/null || die "needs python3"

make_work redis-cost

if ((BUILD)); then
    log "building the $PROFILE banditd"
    if [[ $PROFILE == release ]]; then
        (cd "$ROOT" && cargo build --release --bin banditd) >&2
    else
        (cd "$ROOT" && cargo build --bin banditd) >&2
    fi
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BANDITD_BIN=${BANDITD_BIN:-$TARGET/$PROFILE/banditd}
[[ -x $BANDITD_BIN ]] || die "$BANDITD_BIN is missing; build it (cargo build --bin banditd)"
ensure_wrk

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
# snapshot NAME: INFO (cpu, commandstats, persistence, memory) and the wall clock, to a file.
snapshot() {
    {
        echo "wall_ns:$(date +%s%N)"
        rcli info cpu
        rcli info commandstats
        rcli info persistence
        rcli info memory
        echo "sticky_bytes:$(sticky_bytes)"
    } | tr -d '\r' >"$WORK/snap-$1"
}
# The sticky records of load-sticky, revision 1: per shard its records hash, its unit index, its
# list of new units not yet indexed and the earlier layout's sorted set, if any
# (src/store/redis/layout.rs).
sticky_bytes() {
    local total=0 shard key bytes
    for shard in 0 1 2 3 4 5 6 7; do
        for key in r n p u; do
            bytes=$(rcli memory usage "{bd:load-sticky:1:$shard}:$key" samples 0)
            total=$((total + ${bytes:-0}))
        done
    done
    echo "$total"
}

mkdir -p "$WORK/redis" "$WORK/experiments"
cp "$HERE/experiments/load-sticky.yaml" "$WORK/experiments/"
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
    --appendonly yes --appendfsync always --save '' --maxmemory-policy noeviction \
    --auto-aof-rewrite-percentage 0 --daemonize no --logfile "$WORK/redis/redis.log" &
STARTED_PIDS+=("$!")
deadline=$((SECONDS + 20))
until [[ $(rcli ping 2>/dev/null) == PONG ]]; do
    ((SECONDS < deadline)) || die "redis-server did not answer within 20 s"
    sleep 0.05
done
setsid "$BANDITD_BIN" serve --bind "127.0.0.1:$BANDITD_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
    --data-dir "$WORK/data-unused" --experiments "$WORK/experiments" --workers 1 \
    --access-log off >"$WORK/banditd.log" 2>&1 &
BANDITD_PID=$!
STARTED_PIDS+=("$BANDITD_PID")
wait_ready "http://127.0.0.1:$BANDITD_PORT/readyz" "$BANDITD_PID" 120 >/dev/null
sleep 1
snapshot idle0
sleep 5
snapshot idle1

exposures() {
    curl -s "http://127.0.0.1:$BANDITD_PORT/v1/experiments/load-sticky" |
        python3 -c 'import json, sys; print(sum(a["exposures"] for a in json.load(sys.stdin)["arms"]))'
}
# New units, in wrk runs of 20 s: each run walks on from where the exposure count says the
# last stopped (less the connections that may have been in flight: a known unit is answered
# from the replica's cache without a Redis call), and asks for unit 0 once past N.
cat >"$WORK/units.lua" <<'LUA'
local n, next_unit = 0, 0
init = function(args)
   n = tonumber(args[1])
   next_unit = tonumber(args[2])
end
request = function()
   local i = next_unit
   next_unit = next_unit + 1
   if i >= n then i = 0 end
   return wrk.format("GET", string.format("/v1/experiments/load-sticky/assign?unit=unit-%010d", i))
end
LUA
log "phase units: $(thousands "$UNITS") new units, $CONNECTIONS connections"
snapshot units0
COUNTED=0
for pass in $(seq 1 500); do
    offset=$((COUNTED > CONNECTIONS ? COUNTED - CONNECTIONS : 0))
    duration=$(((UNITS - COUNTED) / 500 + 2))
    ((duration > 20)) && duration=20
    wrk -t1 -c"$CONNECTIONS" -d"${duration}s" --timeout 30s -s "$WORK/units.lua" \
        "http://127.0.0.1:$BANDITD_PORT" -- "$UNITS" "$offset" >"$WORK/units-$pass.out" 2>&1 ||
        die "wrk failed; see $WORK/units-$pass.out"
    grep -q 'Non-2xx' "$WORK/units-$pass.out" && die "assign errors; see $WORK/units-$pass.out"
    sleep 0.2
    COUNTED=$(exposures)
    log "pass $pass: $(thousands "$COUNTED") units"
    ((COUNTED >= UNITS)) && break
done
sleep 0.5
snapshot units1
COUNTED=$(exposures)
[[ $COUNTED == "$UNITS" ]] || die "the experiment counts $COUNTED exposures, not $UNITS"

# post_events EXPECT: the N events, B per POST; EXPECT applied|duplicate: what each must be.
post_events() {
    python3 - "$UNITS" "$BATCH" "$1" "http://127.0.0.1:$BANDITD_PORT/v1/events" <<'PY'
import json, sys, time, urllib.error, urllib.request
units, batch, expect, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
for start in range(0, units, batch):
    lines = []
    for i in range(start, min(units, start + batch)):
        event_id = "%08x-0000-4000-8000-%012x" % (i >> 48, i)
        lines.append(json.dumps({"id": event_id, "experiment": "load-sticky",
                                 "unit": "unit-%010d" % i}, separators=(",", ":")))
    request = urllib.request.Request(url, data=("\n".join(lines) + "\n").encode(),
                                     headers={"content-type": "application/x-ndjson"})
    with urllib.request.urlopen(request, timeout=120) as response:
        report = json.load(response)
    if report[expect] != len(lines):
        sys.exit(f"batch at {start}: expected {len(lines)} {expect}, got {report}")
PY
}
log "phase events: $(thousands "$UNITS") events, $BATCH per POST"
snapshot events0
post_events applied
sleep 0.5
snapshot events1
log "phase retries: the same events again"
snapshot retries0
post_events duplicate
sleep 0.5
snapshot retries1

VERSION=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
python3 - "$WORK" "$UNITS" "$CONNECTIONS" "$BATCH" "$VERSION" "$(git -C "$ROOT" rev-parse --short HEAD)" "$BANDITD_BIN" <<'PY'
import sys
work, units, conns, batch, version, commit, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
# Commands that change the dataset (each is one AOF record when a script runs it).
WRITES = {"set", "del", "unlink", "hset", "hsetnx", "hincrby", "hincrbyfloat", "hdel", "zadd",
          "zrem", "zremrangebyscore", "sadd", "srem", "expire", "pexpire", "pexpireat",
          "incr", "incrby", "setnx", "psetex", "getdel", "rename", "append", "rpush", "ltrim"}
SCRIPTS = {"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall"}

def load(name):
    snap = {"cmd": {}}
    for line in open(f"{work}/snap-{name}"):
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=") for part in value.split(","))
            snap["cmd"][key[8:]] = (int(fields["calls"]), int(fields["usec"]))
        else:
            snap[key] = value
    return snap

def delta(a, b):
    before, after = load(a), load(b)
    d = {"wall": (int(after["wall_ns"]) - int(before["wall_ns"])) / 1e9}
    d["cpu"] = sum(float(after[k]) - float(before[k]) for k in ("used_cpu_user", "used_cpu_sys"))
    d["sys"] = float(after["used_cpu_sys"]) - float(before["used_cpu_sys"])
    d["aof"] = int(after["aof_current_size"]) - int(before["aof_current_size"])
    d["mem"] = int(after["used_memory"]) - int(before["used_memory"])
    d["sticky"] = int(after["sticky_bytes"]) - int(before["sticky_bytes"])
    calls = {}
    for name, (n, us) in after["cmd"].items():
        n0, us0 = before["cmd"].get(name, (0, 0))
        if n - n0:
            calls[name] = (n - n0, us - us0)
    d["calls"] = calls
    return d

idle = delta("idle0", "idle1")
rows, cost = [], {}
for phase, per in (("units", "new unit"), ("events", "applied event"), ("retries", "retried event")):
    d = delta(phase + "0", phase + "1")
    scale = d["wall"] / idle["wall"]
    net_cpu = d["cpu"] - idle["cpu"] * scale
    inner = {k: v for k, v in d["calls"].items() if k not in SCRIPTS}
    idle_inner = {k: v for k, v in idle["calls"].items() if k not in SCRIPTS}
    commands = sum(n for n, _ in inner.values()) - sum(n for n, _ in idle_inner.values()) * scale
    writes = sum(n for k, (n, _) in inner.items() if k in WRITES)
    writes -= sum(n for k, (n, _) in idle_inner.items() if k in WRITES) * scale
    scripts = sum(n for k, (n, _) in d["calls"].items() if k in SCRIPTS)
    script_us = sum(us for k, (_, us) in d["calls"].items() if k in SCRIPTS)
    command_us = sum(us for k, (_, us) in d["calls"].items() if k not in SCRIPTS)
    top = sorted(inner.items(), key=lambda kv: -kv[1][0])[:8]
    cost[phase] = (net_cpu / units * 1e6, commands / units, writes / units, d["aof"] / units)
    rows.append(f"| {per} | {net_cpu / units * 1e6:.1f} ({d['cpu'] / units * 1e6:.1f} raw, "
                f"{d['sys'] / units * 1e6:.1f} sys) | {script_us / units:.1f} | {command_us / units:.1f} | "
                f"{commands / units:.2f} | {writes / units:.2f} | {scripts / units:.3f} | "
                f"{d['aof'] / units:.0f} | "
                + ", ".join(f"{k} {n / units:.2f}" for k, (n, _) in top) + " |")
    if phase == "events":
        per_id = (d["mem"] - d["sticky"]) / units
        sticky_growth = d["sticky"] / units
units_mem = delta("units0", "units1")["mem"] / units
print(f"COST units={units} connections={conns} batch={batch} redis={version} commit={commit} "
      f"unit_us={cost['units'][0]:.1f} unit_cmds={cost['units'][1]:.2f} unit_writes={cost['units'][2]:.2f} "
      f"event_us={cost['events'][0]:.1f} event_cmds={cost['events'][1]:.2f} event_writes={cost['events'][2]:.2f} "
      f"retry_us={cost['retries'][0]:.1f} per_unit_bytes={units_mem:.0f} per_event_id_bytes={per_id:.0f} "
      f"idle_cpu_pct={100 * idle['cpu'] / idle['wall']:.1f}")
print(f"""
redis-server {version}, banditd {binary} (worktree at {commit}), {units:,} units ({conns} connections), {units:,} events ({batch} per POST).
Per unit of work; CPU net of the idle replica's {100 * idle['cpu'] / idle['wall']:.1f}% of a core (of which the
kernel's share, AOF writes and fsyncs mostly, as "sys"). "In scripts": INFO commandstats' time
inside script calls (their commands included); "in commands": inside commands, scripts' and
direct ones alike (so the two overlap). Both are wall-clock time, which a busy machine inflates
(a preempted command keeps counting); the CPU column is not.

| per | redis CPU µs | in scripts µs | in commands µs | commands | writes | script calls | AOF bytes | most frequent commands |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
""" + "\n".join(rows) + f"""

Memory (used_memory growth, approximate at small N: hash tables double in steps): {units_mem:.0f} B per
sticky unit; {per_id:.0f} B per kept event id with its claim outcome (credited records' growth,
{sticky_growth:.0f} B each, taken out).""")
PY
