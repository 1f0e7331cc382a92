# banditd on Redis for benches/load/run.sh --redis (sourced): a redis-server with the settings
# the README asks for (appendonly yes, appendfsync always) in a temp dir, a second banditd that
# serves from it, and the extra run of every scenario against that banditd, so each scenario
# reports banditd on Redis against the bare baseline AND against banditd on sled, same run.
#
# Cores (2 here): both banditd processes and the baseline on SERVER_CORE (0), as in the sled
# runs; redis-server pinned to REDIS_CORE (1), which wrk (CLIENT_CORE, 1) shares: on a 2-core
# machine Redis cannot have a core to itself. The report gives redis-server's CPU per scenario,
# so it shows when Redis (or wrk beside it) rather than banditd is the limit.

REDIS_PORT=${REDIS_PORT:-18379}
REDIS_BANDITD_PORT=${REDIS_BANDITD_PORT:-18082}
REDIS_CORE=${REDIS_CORE:-1}
REDIS_PID=
REDIS_BANDITD_PID=
declare -A REDIS_RPS=() REDIS_EVS=() REDIS_RATIO=() REDIS_VS_SLED=() REDIS_CPU=() REDIS_REWRITE=()

redis_url() { echo "redis://127.0.0.1:$REDIS_PORT"; }

# start_redis: redis-server in $WORK/redis, AOF with an fsync before every reply; no RDB.
start_redis() {
    command -v redis-server >/dev/null || die "--redis needs redis-server (apt-get install -y redis-server)"
    port_free "$REDIS_PORT" || die "port $REDIS_PORT is in use; set REDIS_PORT"
    mkdir -p "$WORK/redis"
    setsid taskset -c "$REDIS_CORE" nice -n "$NICE" redis-server --port "$REDIS_PORT" \
        --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync always --save '' \
        --maxmemory-policy noeviction --daemonize no --logfile "$WORK/redis/redis.log" &
    REDIS_PID=$!
    STARTED_PIDS+=("$REDIS_PID")
    boost "$REDIS_PID"
    local deadline=$((SECONDS + 20))
    until [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
        kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited; see $WORK/redis/redis.log"
        ((SECONDS < deadline)) || die "redis-server did not answer within 20 s"
        sleep 0.05
    done
    log "redis-server started (pid $REDIS_PID, core $REDIS_CORE, appendfsync always)"
}

# start_redis_banditd: banditd --redis, one worker, pinned like the sled one.
start_redis_banditd() {
    local t0
    t0=$(date +%s%N)
    start_server banditd-redis "$WORK/banditd-redis.log" "$BIN/banditd" serve \
        --bind "127.0.0.1:$REDIS_BANDITD_PORT" --redis "$(redis_url)" \
        --data-dir "$WORK/data-redis-unused" --experiments "$WORK/experiments" --workers 1 \
        --access-log "${ACCESS_LOG:-off}"
    REDIS_BANDITD_PID=$SERVER_PID
    wait_ready "http://127.0.0.1:$REDIS_BANDITD_PORT/readyz" "$REDIS_BANDITD_PID" 60 "$t0" >/dev/null
    log "banditd on redis ready"
}

# redis_info FIELD: one field of redis-server's INFO.
redis_info() {
    redis-cli -p "$REDIS_PORT" INFO persistence | tr -d '\r' | sed -n "s/^$1://p"
}

# settle_aof: rewrites the AOF once and waits for the rewrite to finish. Redis rewrites its
# AOF by itself when it has doubled since the last rewrite (auto-aof-rewrite-percentage 100);
# the child doing it runs on Redis's core and its writes queue beside every fsync, and a bulk
# run that overlapped one measured ~96,000 against ~160,000 events/s without (session 19,
# benches/load/results/aof19-2026-12-02-s19.md). Where the fill's own rewrites left the
# threshold decided whether a scenario met one, so runs of one build differed by 1.7×.
# Starting every run from a fresh rewrite puts the next automatic one at twice the filled
# dataset, and a scenario that finds the AOF past half way to it rewrites it first
# (`aof_past_half`, in measure_redis); each scenario still reports one that overlaps it
# (REDIS_REWRITE), and benches/load/aof_rewrite.sh measures bulk ingest during one.
settle_aof() {
    local deadline=$((SECONDS + 180)) before
    aof_idle() {
        [[ $(redis_info aof_rewrite_in_progress) == 0 && $(redis_info aof_rewrite_scheduled) == 0 ]]
    }
    until aof_idle; do
        ((SECONDS < deadline)) || die "redis-server's AOF rewrite did not finish within 180 s"
        sleep 0.2
    done
    # aof_rewrites counts rewrites started.
    before=$(redis_info aof_rewrites)
    redis-cli -p "$REDIS_PORT" BGREWRITEAOF >/dev/null
    until (($(redis_info aof_rewrites) > before)) && aof_idle; do
        ((SECONDS < deadline)) || die "redis-server's AOF rewrite did not finish within 180 s"
        sleep 0.2
    done
    [[ $(redis_info aof_last_bgrewrite_status) == ok ]] ||
        die "redis-server's AOF rewrite failed; see $WORK/redis/redis.log"
    log "redis-server's AOF rewritten ($(thousands "$(redis_info aof_base_size)") bytes)"
}

# aof_past_half: the AOF has grown by more than half its base since the last rewrite, so a
# scenario's writes could take it to the automatic rewrite's threshold (twice the base). With the
# saturated scenarios, the writes before the bulk scenario did (session 20: its run met a rewrite).
aof_past_half() {
    local base current
    base=$(redis_info aof_base_size)
    current=$(redis_info aof_current_size)
    [[ $base =~ ^[0-9]+$ && $current =~ ^[0-9]+$ ]] && ((current * 2 > base * 3))
}

# The event scenarios' units, written into Redis through the store API (the same units as
# the sled store's, so both servers take ev_base from the same cursor).
start_redis_servers() {
    [[ -n $REDIS_BANDITD_PID ]] && return 0
    start_redis
    log "banditd-fill: $(thousands "$EVENT_UNITS") units (ev-*) into redis"
    "$BIN/banditd-fill" --redis "$(redis_url)" --experiment "$STICKY_YAML" \
        --count "$EVENT_UNITS" --prefix ev- 2>>"$WORK/fill-redis.log" | grep -q '^FILL ' ||
        die "banditd-fill into redis failed; see $WORK/fill-redis.log"
    settle_aof
    start_redis_banditd
    warm_up_at "$REDIS_BANDITD_PORT" "$REDIS_BANDITD_PID"
}

# measure_redis NAME CONNECTIONS SCRIPT_ARGS...: the scenario against banditd on Redis; sets
# REDIS_RPS, REDIS_EVS, REDIS_CPU (redis-server, % of one core) and leaves its row in R.
measure_redis() {
    local name=$1 conns=$2 ticks_before ticks_after
    shift 2
    log "scenario $name: banditd on redis"
    SERVER_PID=$REDIS_BANDITD_PID
    # PERF=1: start_profile samples BANDITD_PID; here that is the banditd on Redis.
    local sled_pid=$BANDITD_PID
    BANDITD_PID=$REDIS_BANDITD_PID
    start_profile "redis-$name"
    BANDITD_PID=$sled_pid
    ticks_before=$(cpu_ticks "$REDIS_PID")
    local rewrites_before rewriting_before
    # REDIS_REWRITE_DURING=1 (benches/load/aof_rewrite.sh): start an AOF rewrite as the load
    # starts, to measure the scenario during one.
    if [[ ${REDIS_REWRITE_DURING:-0} == 1 ]]; then
        redis-cli -p "$REDIS_PORT" BGREWRITEAOF >/dev/null
    elif [[ $name == events_bulk ]] || aof_past_half; then
        # Rewritten now, outside the measured run, rather than by Redis during it (bulk ingest
        # alone writes about the filled dataset's AOF again in a quick run: it always starts
        # from a fresh rewrite).
        settle_aof
    fi
    rewrites_before=$(redis_info aof_rewrites)
    rewriting_before=$(redis_info aof_rewrite_in_progress)
    run_wrk "$WORK/$name-redis.out" "http://127.0.0.1:$REDIS_BANDITD_PORT" "$DURATION" "$conns" \
        -- "$@" run="${name}-r"
    ticks_after=$(cpu_ticks "$REDIS_PID")
    # An AOF rewrite that ran during the scenario (started, finished or in progress).
    REDIS_REWRITE[$name]=
    if [[ $rewriting_before == 1 || $(redis_info aof_rewrite_in_progress) == 1 ||
        $(redis_info aof_rewrites) != "$rewrites_before" ]]; then
        REDIS_REWRITE[$name]=1
        log "scenario $name: an AOF rewrite of redis-server overlapped the run"
    fi
    stop_profile
    REDIS_RPS[$name]=${R[rps]}
    REDIS_EVS[$name]=${R[events_per_s]}
    REDIS_CPU[$name]=$(awk -v d="$((ticks_after - ticks_before))" -v hz="$CLK_TCK" \
        -v us="${R[duration_us]}" 'BEGIN {printf "%.0f", 100 * d / hz / (us / 1e6)}')
    ((R[highest_next] > EV_CURSOR)) && EV_CURSOR=${R[highest_next]}
    return 0
}

# redis_targets: the Redis targets (per banditd core) and the notes of a --redis run.
redis_targets() {
    local name
    redis_ratio_target assign_known "Redis: assign, known sticky unit" 0.8
    redis_ratio_target assign_new "Redis: assign, new unit" 0.4
    redis_ratio_target assign_new_saturated \
        "Redis: assign, new unit, $SATURATED_CONNECTIONS connections" 0.4
    if [[ -n ${REDIS_EVS[events_bulk]:-} ]]; then
        target "Redis: bulk durable ingest (1,000 per POST)" "≥ 150,000 events/s" \
            "$(thousands "${REDIS_EVS[events_bulk]}") events/s${REDIS_REWRITE[events_bulk]:+ (during an AOF rewrite)}" \
            "$(at_least "${REDIS_EVS[events_bulk]}" 150000)"
    fi
    local rows=() server
    for name in assign_known assign_new per_request event_single assign_new_saturated \
        event_single_saturated events_bulk mixed; do
        [[ -n ${REDIS_RPS[$name]:-} ]] || continue
        rows+=("| $name | ${REDIS_RATIO[$name]}× | ${RATIO[$name]:-–}× | ${REDIS_VS_SLED[$name]}× | ${REDIS_CPU[$name]}% | ${REDIS_REWRITE[$name]:+yes} |")
    done
    server=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
    NOTES+=("### banditd on Redis

redis-server $server, \`appendonly yes\`, \`appendfsync always\` (an fsync before every reply),
no RDB, in a temp dir on the same disk; pinned to core $REDIS_CORE, which it shares with wrk
(2 cores: banditd on core $SERVER_CORE, Redis and the load generator on core $REDIS_CORE). Each
scenario ran the baseline, banditd on sled, banditd on Redis, then the baseline again; ratios are
to the mean of the two baseline runs. Redis CPU: redis-server's share of one core during the
banditd-on-Redis run (near 100%, or wrk's CPU near 100 - Redis's, means core $REDIS_CORE, not
banditd, was the limit). AOF rewrite: redis-server rewrote its AOF during the run (the AOF is
rewritten once after the fill, so a quick run normally meets none; one that does is slower).

| scenario | Redis ÷ baseline | sled ÷ baseline | Redis ÷ sled | Redis CPU | AOF rewrite |
| --- | ---: | ---: | ---: | ---: | --- |
$(printf '%s\n' "${rows[@]}")")
}

# redis_ratio_target NAME WHAT MIN
redis_ratio_target() {
    [[ -n ${REDIS_RATIO[$1]:-} ]] || return 0
    target "$2" "≥ $3× baseline" "${REDIS_RATIO[$1]}× (sled ${RATIO[$1]:-–}×)" \
        "$(at_least "${REDIS_RATIO[$1]}" "$3")"
}
