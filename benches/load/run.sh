#!/usr/bin/env bash
# banditd load test: one command from a clean clone.
#
#   benches/load/run.sh [--quick | --full] [--scale] [--units N] [--soak MINUTES]
#                       [--scenarios LIST] [--metrics-ab ROUNDS] [--redis] [--no-build] [--strict]
#
#   --quick        ~5 s per scenario (default; for development)
#   --full         ~30 s per scenario, and the scale test (--scale)
#   --scale        also the 10M-unit test: banditd-fill writes --units N sticky units (default
#                  10,000,000), then: known-unit assign throughput vs a small store, disk bytes
#                  per unit, RSS, and startup time (process start to /readyz 200)
#   --crash S      first run the kill -9 durability check with S seconds of concurrent load
#                  (release build of the integration test; exit 1 if anything acked is lost)
#   --soak M       also hold the mixed load for M minutes, sample RSS every 10 s; exit 1 if RSS
#                  grows > 10% after the first minute beyond what the store reports its in-memory
#                  tables grew (banditd_store_table_bytes), or if any request fails
#   --scenarios L  comma-separated subset of: assign_known,assign_new,per_request,event_single,
#                  assign_new_saturated,event_single_saturated,events_bulk,mixed,paced — or
#                  "all" (default) or "none". The two *_saturated are the durable writes again
#                  at $SATURATED_CONNECTIONS (384) connections, baseline included: at 64 a
#                  closed loop waits on each group commit's fsync and leaves the server's core
#                  partly idle, so they measure what one core does when the load fills it
#   --metrics-ab R also R rounds of the cost of metrics: known-unit and per-request assign
#                  against banditd with --metrics off, on, off (same build, fresh data dirs);
#                  reports each ratio and their mean and spread (benches/load/metrics_ab.sh).
#                  `--quick --scenarios none --metrics-ab 3` runs only that
#   --redis        also run every scenario against a second banditd on Redis (benches/load/redis.sh:
#                  redis-server with appendonly yes, appendfsync always in a temp dir, pinned to
#                  REDIS_CORE (1), which wrk shares); each row then has banditd on sled and on
#                  Redis between the two baseline runs, with ratios to the baseline and Redis ÷
#                  sled, and the Redis targets. Report: results/redis-latest.md
#   --no-build     use the binaries already built
#   --strict       exit 1 when any target is missed (errors always exit 1)
#
# What it does:
#   1. cargo build --release --bins (into $CARGO_TARGET_DIR, default target/).
#   2. Installs wrk with apt-get if it is missing.
#   3. Starts, on a temp data dir and a temp copy of benches/load/experiments (one sticky and
#      one per-request experiment, three arms, burn_in 0): banditd, and a bare actix-web
#      baseline (banditd-baseline: fixed JSON answer of the same size, serde_json per request,
#      same worker count, same GET and POST routes).
#   4. Pins the servers to core $SERVER_CORE (0) and wrk to core $CLIENT_CORE (1) with taskset;
#      servers run ONE HTTP worker, so every number is per core, and banditd's store writer
#      thread shares that core (it is part of what one core of banditd costs). wrk runs one
#      thread with $CONNECTIONS (64) connections (bulk events: $BULK_CONNECTIONS, 8). As root,
#      servers and wrk run in their own sessions at nice $NICE (-10), session (autogroup)
#      weight included, so that other work on the machine disturbs them less; the report
#      records the load average and each process's CPU share, which show what remained.
#   5. Per scenario: the baseline, banditd, then the baseline again, same script, same
#      duration; the ratio is to the mean of the two baseline runs. Reports req/s,
#      events/s, p50/p99/p99.9 latency, errors (non-2xx counted by the Lua script, socket
#      errors, timeouts, refused events), banditd/baseline, server CPU (% of a core) and
#      client CPU (to show when wrk, not the server, is the limit), server RSS at the end.
#   6. p99 of known-unit assign at ~50% of the measured maximum: wrk2 is not packaged for
#      Debian, so Lua pacing (benches/load/lua/pace.lua; exponential think time per
#      connection, 100 connections, calibrated by one short run). Not corrected for
#      coordinated omission the way wrk2 is: see pace.lua.
#   7. Writes the Markdown report to benches/load/results/latest.md and prints it.
# Every process it starts is stopped on exit, Ctrl-C included.
#
# Environment: CARGO_TARGET_DIR, SERVER_CORE, CLIENT_CORE, NICE, CONNECTIONS, BULK_CONNECTIONS,
# SATURATED_CONNECTIONS,
# PERF=1 (profile banditd during each scenario with perf: results/perf-NAME.{data,txt}),
# ACCESS_LOG (off; all or sample:P to include the access log), BANDITD_PORT (18080),
# BASELINE_PORT (18081), KNOWN_UNITS, EVENT_UNITS, KEEP_WORK=1 (keep the
# temp dir with server logs and wrk outputs).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LUA_DIR=$HERE/lua
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/load/phases.sh
source "$HERE/phases.sh"
# shellcheck source=benches/load/soak.sh
source "$HERE/soak.sh"
# shellcheck source=benches/load/scale.sh
source "$HERE/scale.sh"
# shellcheck source=benches/load/metrics_ab.sh
source "$HERE/metrics_ab.sh"
# shellcheck source=benches/load/report.sh
source "$HERE/report.sh"
# shellcheck source=benches/load/redis.sh
source "$HERE/redis.sh"

MODE=quick
SCALE=0
SCALE_UNITS=10000000
SOAK_MIN=0
CRASH_SECS=0
METRICS_AB=0
SCENARIOS=all
BUILD=1
STRICT=0
REDIS=0
while (($#)); do
    case $1 in
    --quick) MODE=quick ;;
    --full) MODE=full SCALE=1 ;;
    --scale) SCALE=1 ;;
    --units) SCALE_UNITS=${2:?--units needs a number}; shift ;;
    --soak) SOAK_MIN=${2:?--soak needs minutes}; shift ;;
    --crash) CRASH_SECS=${2:?--crash needs seconds}; shift ;;
    --scenarios) SCENARIOS=${2:?--scenarios needs a list}; shift ;;
    --metrics-ab) METRICS_AB=${2:?--metrics-ab needs a number of rounds}; shift ;;
    --redis) REDIS=1 ;;
    --no-build) BUILD=0 ;;
    --strict) STRICT=1 ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ $SCALE_UNITS =~ ^[0-9]+$ && $SOAK_MIN =~ ^[0-9]+$ && $CRASH_SECS =~ ^[0-9]+$ &&
    $METRICS_AB =~ ^[0-9]+$ ]] || die "--units, --soak, --crash and --metrics-ab take whole numbers"
[[ $SCENARIOS == all ]] && SCENARIOS=assign_known,assign_new,per_request,event_single,assign_new_saturated,event_single_saturated,events_bulk,mixed,paced
[[ $SCENARIOS == none ]] && SCENARIOS=

if [[ $MODE == full ]]; then DURATION=30; else DURATION=5; fi
CONNECTIONS=${CONNECTIONS:-64}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-8}
SATURATED_CONNECTIONS=${SATURATED_CONNECTIONS:-384}
PACE_CONNECTIONS=100
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
# Root runs the measured processes at a higher priority (lib.sh: boost), so that background
# work on a shared machine (builds) disturbs them less; it cannot remove it, so the report
# records the load.
if [[ $(id -u) == 0 ]]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi
BANDITD_PORT=${BANDITD_PORT:-18080}
BASELINE_PORT=${BASELINE_PORT:-18081}
if [[ $MODE == full ]]; then KNOWN_UNITS=${KNOWN_UNITS:-100000}; else KNOWN_UNITS=${KNOWN_UNITS:-10000}; fi
# Every applied event needs its own assigned, unrewarded unit: enough for ~60k events/s single,
# ~500k/s bulk (sled's bulk alone reached 494,000/s in session 18 and ran out at 475,000 per
# second of DURATION) and ~15k/s mixed over the event scenarios, plus ~6k/s during a soak. Both
# servers' scenarios start at the same cursor, so the faster one sets the need. A shortfall
# shows as refused events.
# Every event scenario's runs (sled's and Redis's) take their units from one cursor: bulk up to
# ~550,000 a second on sled and ~250,000 on Redis, the four single-event runs up to ~60,000 each,
# mixed ~10,000. Short of units, the mixed scenario's events named units nobody assigned
# (session 20: 11,034 refused after the saturated scenarios were added).
EVENT_UNITS=${EVENT_UNITS:-$((DURATION * 1000000 + SOAK_MIN * 60 * 6000 + 100000))}

if (($(nproc) < 2)); then
    log "warning: one core only; server and client share it, so the numbers are not per core"
    CLIENT_CORE=$SERVER_CORE
fi
for port in "$BANDITD_PORT" "$BASELINE_PORT"; do
    port_free "$port" || die "port $port is in use; set BANDITD_PORT / BASELINE_PORT"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/banditd-load.XXXXXX")
cleanup() {
    stop_all
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

if ((BUILD)); then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bins) >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release
for b in banditd banditd-baseline banditd-fill; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing; build with cargo build --release --bins"
done
ensure_wrk

# Durability under load, long version: the kill -9 integration test (concurrent clients post
# events and assign new units, the server is killed mid-stream, restarted and checked: acked
# events applied exactly once, unacked at most once, counters equal the records, answered
# units keep their variant), with CRASH_SECS of load instead of 1.5 s, in release.
if ((CRASH_SECS > 0)); then
    log "durability: kill -9 after ${CRASH_SECS}s of concurrent load"
    if ! (cd "$ROOT" && BANDITD_CRASH_LOAD_MS=$((CRASH_SECS * 1000)) \
        cargo test --release --test api kill_9_mid_stream -- --nocapture) >&2; then
        die "durability check failed"
    fi
    log "durability: passed"
fi

mkdir -p "$WORK/experiments" "$HERE/results"
cp "$HERE"/experiments/*.yaml "$WORK/experiments/"
STICKY_YAML=$WORK/experiments/load-sticky.yaml
cat "$LUA_DIR/load.lua" "$LUA_DIR/pace.lua" >"$WORK/paced.lua"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
FAILED=0   # errors seen: exit 1
MISSED=0   # targets missed: exit 1 with --strict
ROWS=()    # scenario table
COSTS=()   # per-event server CPU and disk writes of the event scenarios
TARGETS=() # target table
NOTES=()   # extra report sections

[[ -n $SCENARIOS ]] && run_scenarios
((SOAK_MIN > 0)) && run_soak
((METRICS_AB > 0)) && run_metrics_ab "$METRICS_AB"
((SCALE)) && run_scale
stop_all

REPORT=latest.md
((REDIS)) && REPORT=redis-latest.md
write_report "$HERE/results/$REPORT"
cat "$HERE/results/$REPORT"
log "report written to benches/load/results/$REPORT"
((FAILED)) && { log "failed: errors, refused events or soak growth (see the report)"; exit 1; }
((STRICT && MISSED)) && { log "targets missed (--strict)"; exit 1; }
exit 0
