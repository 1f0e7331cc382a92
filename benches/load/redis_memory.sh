#!/usr/bin/env bash
# Redis memory per sticky unit and per kept event id, measured through banditd's HTTP API:
#
#   benches/load/redis_memory.sh [--units N] [--no-build]
#
# Starts redis-server (appendonly yes, appendfsync always, noeviction; temp dir, free port) and
# one banditd --redis serving benches/load/experiments/load-sticky.yaml (sticky, 3 arms), then:
#   1. INFO memory (used_memory) once banditd is ready;
#   2. N new units through GET /v1/experiments/load-sticky/assign (wrk, one request per unit;
#      unit ids `unit-%010d`, 15 bytes), checked: the experiment counts exactly N exposures;
#   3. used_memory again: (after - before) / N = bytes per sticky unit (its record, its share of
#      the sorted set, and the replica's other keys, which do not grow with N);
#   4. N events through POST /v1/events (NDJSON, 1,000 per request, retried on a 503 as a
#      pipeline would; ids 36 bytes, UUID-shaped),
#      one per unit, each applied (credits the unit's assignment and keeps the event id);
#   5. used_memory again, and the sticky sorted sets' MEMORY USAGE before and after step 4 (a
#      credited record is a few bytes longer): bytes per kept event id =
#      (Δ used_memory - Δ sticky sets) / N.
# Prints one MEMORY line and a Markdown table. Every process it starts is stopped on exit.
#
# Environment: CARGO_TARGET_DIR (release binaries), REDIS_PORT (18479), BANDITD_PORT (18480).

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"

UNITS=1000000
BUILD=1
while (($#)); do
    case $1 in
    --units) UNITS=${2:?--units needs a number}; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ $UNITS =~ ^[0-9]+$ ]] && ((UNITS > 0)) || die "--units takes a positive whole number"
REDIS_PORT=${REDIS_PORT:-18479}
BANDITD_PORT=${BANDITD_PORT:-18480}
NICE=0
for port in "$REDIS_PORT" "$BANDITD_PORT"; do
    port_free "$port" || die "port $port is in use; set REDIS_PORT / BANDITD_PORT"
done
command -v redis-server >/dev/null || die "needs redis-server (apt-get install -y redis-server)"
command -v python3 >/dev/null || die "needs python3"

make_work redis-memory

if ((BUILD)); then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bin banditd) >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release
[[ -x $BIN/banditd ]] || die "$BIN/banditd is missing; build with cargo build --release --bin banditd"
ensure_wrk

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }
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
    --daemonize no --logfile "$WORK/redis/redis.log" &
STARTED_PIDS+=("$!")
deadline=$((SECONDS + 20))
until [[ $(rcli ping 2>/dev/null) == PONG ]]; do
    ((SECONDS < deadline)) || die "redis-server did not answer within 20 s"
    sleep 0.05
done
setsid "$BIN/banditd" serve --bind "127.0.0.1:$BANDITD_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
    --data-dir "$WORK/data-unused" --experiments "$WORK/experiments" --workers 2 \
    --access-log off >"$WORK/banditd.log" 2>&1 &
BANDITD_PID=$!
STARTED_PIDS+=("$BANDITD_PID")
wait_ready "http://127.0.0.1:$BANDITD_PORT/readyz" "$BANDITD_PID" 60 >/dev/null
sleep 1
BEFORE=$(used_memory)
log "used_memory before: $BEFORE"

# 2. N new units, one assign each, in wrk runs of 20 s: each run walks on from where the
# experiment's exposure count says the last stopped (less the 64 that may still have been in
# flight: asking for a known unit again adds nothing), and asks for unit 0 once past N.
exposures() {
    curl -s "http://127.0.0.1:$BANDITD_PORT/v1/experiments/load-sticky" |
        python3 -c 'import json, sys; print(sum(a["exposures"] for a in json.load(sys.stdin)["arms"]))'
}
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
log "assigning $(thousands "$UNITS") new units through HTTP"
t0=$SECONDS
COUNTED=0
for pass in $(seq 1 200); do
    offset=$((COUNTED > 64 ? COUNTED - 64 : 0))
    wrk -t1 -c64 -d20s --timeout 30s -s "$WORK/units.lua" "http://127.0.0.1:$BANDITD_PORT" \
        -- "$UNITS" "$offset" >"$WORK/units-$pass.out" 2>&1 || die "wrk failed; see $WORK/units-$pass.out"
    grep -q 'Non-2xx' "$WORK/units-$pass.out" && die "assign errors; see $WORK/units-$pass.out"
    sleep 0.5
    COUNTED=$(exposures)
    log "pass $pass: $(thousands "$COUNTED") units"
    ((COUNTED >= UNITS)) && break
done
log "units written in $((SECONDS - t0)) s"
sleep 1
COUNTED=$(exposures)
[[ $COUNTED == "$UNITS" ]] || die "the experiment counts $COUNTED exposures, not $UNITS"
AFTER_UNITS=$(used_memory)
STICKY_BEFORE=$(sticky_bytes)
log "used_memory after units: $AFTER_UNITS"

# 4. N events, one per unit, 1,000 per POST.
log "posting $(thousands "$UNITS") events through HTTP"
python3 - "$UNITS" "http://127.0.0.1:$BANDITD_PORT/v1/events" <<'PY'
import json, sys, time, urllib.error, urllib.request
units, url = int(sys.argv[1]), sys.argv[2]
batch = 1_000
for start in range(0, units, batch):
    lines = []
    for i in range(start, min(units, start + batch)):
        event_id = "%08x-0000-4000-8000-%012x" % (i >> 48, i)
        lines.append(json.dumps({"id": event_id, "experiment": "load-sticky",
                                 "unit": "unit-%010d" % i}, separators=(",", ":")))
    request = urllib.request.Request(url, data=("\n".join(lines) + "\n").encode(),
                                     headers={"content-type": "application/x-ndjson"})
    for attempt in range(20):
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                report = json.load(response)
            break
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == 19:
                raise
            time.sleep(0.5)
    # A retry after a 503 whose writes did land answers them as duplicates: also kept ids.
    if report["applied"] + report["duplicate"] != len(lines):
        sys.exit(f"batch at {start}: {report['applied']} of {len(lines)} applied: {report}")
PY
sleep 1
AFTER_EVENTS=$(used_memory)
STICKY_AFTER=$(sticky_bytes)
log "used_memory after events: $AFTER_EVENTS"

PER_UNIT=$(awk -v a="$AFTER_UNITS" -v b="$BEFORE" -v n="$UNITS" 'BEGIN {printf "%.1f", (a - b) / n}')
STICKY_GROWTH=$(awk -v a="$STICKY_AFTER" -v b="$STICKY_BEFORE" -v n="$UNITS" 'BEGIN {printf "%.1f", (a - b) / n}')
PER_EVENT=$(awk -v a="$AFTER_EVENTS" -v b="$AFTER_UNITS" -v s="$((STICKY_AFTER - STICKY_BEFORE))" -v n="$UNITS" \
    'BEGIN {printf "%.1f", (a - b - s) / n}')
VERSION=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
echo "MEMORY units=$UNITS per_unit=$PER_UNIT per_event_id=$PER_EVENT sticky_growth_per_credit=$STICKY_GROWTH redis=$VERSION"
cat <<MD
| measured through banditd's HTTP API (redis-server $VERSION, $(thousands "$UNITS") of each) | bytes |
| --- | ---: |
| used_memory before | $(thousands "$BEFORE") |
| after $(thousands "$UNITS") new sticky units (15-byte ids) | $(thousands "$AFTER_UNITS") |
| after $(thousands "$UNITS") applied events (36-byte ids) | $(thousands "$AFTER_EVENTS") |
| per sticky unit | $PER_UNIT |
| per kept event id (without the credited records' growth, $STICKY_GROWTH B each) | $PER_EVENT |
MD
