# Phases of benches/load/run.sh (sourced): the scenario runs, the constant-rate run, the soak,
# the scale test and the report. They read run.sh's settings and append to ROWS, TARGETS and
# NOTES.

declare -A RPS=() RATIO=() P99=() EVS=()
BANDITD_PID=
BASELINE_PID=
EV_CURSOR=0

# fill DIR COUNT PREFIX: writes COUNT sticky units of load-sticky into DIR; sets FILL_SECS.
fill() {
    local dir=$1 count=$2 prefix=$3 line
    log "banditd-fill: $(thousands "$count") units ($prefix*) into $(basename "$dir")"
    line=$("$BIN/banditd-fill" --data-dir "$dir" --experiment "$STICKY_YAML" --count "$count" \
        --prefix "$prefix" 2>>"$WORK/fill.log" | grep '^FILL ') || die "banditd-fill failed; see $WORK/fill.log"
    FILL_SECS=$("$HERE/fill_field.sh" seconds <<<"$line")
}

# start_banditd DATA_DIR LOG: starts banditd with one worker; sets BANDITD_PID, STARTUP_MS.
# The access log is off unless ACCESS_LOG says otherwise (all, sample:P): the scenarios measure
# the request path against a baseline that logs nothing, and the log's own cost per request is
# measured apart (README, "Logs and traces").
start_banditd() {
    local t0
    t0=$(date +%s%N)
    start_server banditd "$2" "$BIN/banditd" serve --bind "127.0.0.1:$BANDITD_PORT" \
        --data-dir "$1" --experiments "$WORK/experiments" --workers 1 \
        --access-log "${ACCESS_LOG:-off}"
    BANDITD_PID=$SERVER_PID
    STARTUP_MS=$(wait_ready "http://127.0.0.1:$BANDITD_PORT/readyz" "$BANDITD_PID" 300 "$t0")
    log "banditd ready after $STARTUP_MS ms"
}

start_baseline() {
    start_server baseline "$WORK/baseline.log" "$BIN/banditd-baseline" \
        --bind "127.0.0.1:$BASELINE_PORT" --workers 1
    BASELINE_PID=$SERVER_PID
    wait_ready "http://127.0.0.1:$BASELINE_PORT/readyz" "$BASELINE_PID" 30 >/dev/null
}

# Assigns the KNOWN_UNITS known units over HTTP; repeats until every one was reached.
warm_up() { warm_up_at "$BANDITD_PORT" "$BANDITD_PID"; }

# warm_up_at PORT PID: the same, on the banditd at PORT.
warm_up_at() {
    local pass secs=$((KNOWN_UNITS / 5000 + 5))
    SERVER_PID=$2
    for pass in 1 2 3 4 5 6 7 8 9 10; do
        run_wrk "$WORK/warmup-$1-$pass.out" "http://127.0.0.1:$1" "$secs" "$CONNECTIONS" \
            -- scenario=warmup known="$KNOWN_UNITS" run="w$1-$pass"
        ((R[errors] == 0)) || die "warm-up saw errors; see $WORK/warmup-$1-$pass.out"
        if ((R[lowest_next] >= KNOWN_UNITS)); then
            log "warm-up: $(thousands "$KNOWN_UNITS") known units assigned ($pass pass(es))"
            return 0
        fi
    done
    die "warm-up did not reach all $KNOWN_UNITS units"
}

start_main_servers() {
    [[ -n $BANDITD_PID ]] && return 0
    fill "$WORK/data" "$EVENT_UNITS" ev-
    start_baseline
    start_banditd "$WORK/data" "$WORK/banditd.log"
    warm_up
    ((REDIS)) && start_redis_servers
    return 0
}

# add_row LABEL SERVER RATIO: one table row from R.
add_row() {
    local events=– refused=– errors
    [[ ${R[applied]} != 0 || ${R[rejected]} != 0 ]] && events=$(thousands "${R[events_per_s]}")
    [[ $2 == banditd* && ( ${R[applied]} != 0 || ${R[rejected]} != 0 ) ]] && refused=${R[rejected]}
    errors="${R[non2xx]} / ${R[socket_errors]} / ${R[timeouts]}"
    local client=${R[client_cpu]}
    [[ $client == – ]] || client+=%
    ROWS+=("| $1 | $2 | $(thousands "${R[rps]}") | $events | $(ms "${R[p50_us]}") | $(ms "${R[p99_us]}") | $(ms "${R[p999_us]}") | $errors | $refused | $3 | ${R[server_cpu]}% | $client | ${R[rss_mb]} |")
    if [[ $2 == banditd* ]] && ((R[errors] > 0 || R[rejected] > 0)); then
        FAILED=1
        log "errors in '$1': ${R[errors]} failed requests, ${R[rejected]} refused events"
    fi
}

# measure NAME LABEL CONNECTIONS SCRIPT_ARGS...: baseline, banditd, baseline again, same load.
# With PERF=1, `perf record` samples banditd (every thread, DWARF call stacks) while its
# scenario runs; the profile goes to benches/load/results/perf-NAME.data and a summary of the
# hottest call paths to perf-NAME.txt. Sampling costs the server some throughput, so the
# numbers of a profiled run are not reported as results.
PERF_PID=
start_profile() {
    [[ ${PERF:-0} == 1 ]] || return 0
    command -v perf >/dev/null || die "PERF=1 needs perf (linux-perf)"
    PERF_NAME=$1
    perf record -F 999 --call-graph dwarf,8192 -p "$BANDITD_PID" \
        -o "$HERE/results/perf-$1.data" >/dev/null 2>&1 &
    PERF_PID=$!
    STARTED_PIDS+=("$PERF_PID")
}
stop_profile() {
    [[ -n $PERF_PID ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    forget_pid "$PERF_PID"
    PERF_PID=
    local data=$HERE/results/perf-$PERF_NAME.data
    {
        echo "# perf profile of banditd, scenario $PERF_NAME ($(date -u '+%Y-%m-%d %H:%M UTC'))"
        echo "## CPU by thread"
        perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -12
        echo "## Inclusive cost of banditd, sled and codec frames (children %, self %)"
        perf report -i "$data" --children --sort sym --stdio -g none --percent-limit 0.5 \
            2>/dev/null | grep -E '^ +[0-9]' |
            grep -E 'banditd::|sled::(tree|pagecache::PageCache::(get|link)|Db::flush|Tree)|serde_json::(ser|de)::|hmac|sha2|base64|actix_router::|mi_malloc|mi_free|__libc_malloc|_int_free' |
            grep -v 'closure}} (inlined)$' | cut -c1-160 | head -60
        echo "## Hottest functions by self time"
        perf report -i "$data" --no-children --sort sym --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -30 | cut -c1-160
    } >"$HERE/results/perf-$PERF_NAME.txt" || true
    log "profile: benches/load/results/perf-$PERF_NAME.{data,txt}"
}

measure() {
    local name=$1 label=$2 conns=$3 before_rps
    shift 3
    log "scenario $name: baseline"
    SERVER_PID=$BASELINE_PID
    run_wrk "$WORK/$name-baseline.out" "http://127.0.0.1:$BASELINE_PORT" "$DURATION" "$conns" \
        -- "$@" run="${name}-b"
    before_rps=${R[rps]}
    add_row "$label" baseline ""
    log "scenario $name: banditd"
    SERVER_PID=$BANDITD_PID
    start_profile "$name"
    run_wrk "$WORK/$name.out" "http://127.0.0.1:$BANDITD_PORT" "$DURATION" "$conns" \
        -- "$@" run="$name"
    stop_profile
    RPS[$name]=${R[rps]}
    EVS[$name]=${R[events_per_s]}
    if [[ ${R[applied]} != 0 ]]; then
        COSTS+=("| $label | $(thousands "${R[applied]}") | ${R[cpu_us_per_event]} | ${R[bytes_per_event]} |")
    fi
    P99[$name]=${R[p99_us]}
    ((R[highest_next] > EV_CURSOR)) && EV_CURSOR=${R[highest_next]}
    local -A banditd_run=()
    local key after_row redis_row=
    for key in "${!R[@]}"; do banditd_run[$key]=${R[$key]}; done
    if ((REDIS)); then
        measure_redis "$name" "$conns" "$@"
        add_row "" "banditd on redis" "REDIS_RATIO"
        redis_row=${ROWS[-1]}
        unset 'ROWS[-1]'
    fi
    # The baseline again, right after: the ratio is to the mean of the runs before and after,
    # so a machine that speeds up or slows down over the pair does not tilt it.
    log "scenario $name: baseline again"
    SERVER_PID=$BASELINE_PID
    run_wrk "$WORK/$name-baseline-after.out" "http://127.0.0.1:$BASELINE_PORT" "$DURATION" \
        "$conns" -- "$@" run="${name}-a"
    local baseline_mean=$(((before_rps + R[rps]) / 2))
    RATIO[$name]=$(ratio "${RPS[$name]}" "$baseline_mean")
    add_row "" "baseline, after" ""
    after_row=${ROWS[-1]}
    unset 'ROWS[-1]'
    R=()
    for key in "${!banditd_run[@]}"; do R[$key]=${banditd_run[$key]}; done
    add_row "" banditd "**${RATIO[$name]}×**"
    if [[ -n $redis_row ]]; then
        REDIS_RATIO[$name]=$(ratio "${REDIS_RPS[$name]}" "$baseline_mean")
        REDIS_VS_SLED[$name]=$(ratio "${REDIS_RPS[$name]}" "${RPS[$name]}")
        ROWS+=("${redis_row/REDIS_RATIO/**${REDIS_RATIO[$name]}×** (${REDIS_VS_SLED[$name]}× sled)}")
    fi
    ROWS+=("$after_row")
    return 0
}

# target WHAT GOAL MEASURED OK
target() {
    TARGETS+=("| $1 | $2 | $3 | $(verdict "$4") |")
    [[ $4 == 1 ]] || MISSED=1
}

# ratio_target NAME WHAT MIN
ratio_target() {
    [[ -n ${RATIO[$1]:-} ]] || return 0
    target "$2" "≥ $3× baseline" "${RATIO[$1]}×" "$(at_least "${RATIO[$1]}" "$3")"
}

# p99 of known-unit assign at ~50% of the maximum measured, by Lua pacing (see pace.lua).
# measure_paced [PORT PID MAX LABEL]: default the sled banditd and its assign_known maximum.
measure_paced() {
    local port=${1:-$BANDITD_PORT} pid=${2:-$BANDITD_PID} max=${3-${RPS[assign_known]:-}}
    local label=${4:-} goal cycle_ms pace_ms overhead_ms
    SERVER_PID=$pid
    if [[ -z $max ]]; then
        run_wrk "$WORK/paced-max$label.out" "http://127.0.0.1:$port" "$DURATION" "$CONNECTIONS" \
            -- scenario=assign_known known="$KNOWN_UNITS"
        max=${R[rps]}
    fi
    goal=$((max / 2))
    cycle_ms=$(awk -v c="$PACE_CONNECTIONS" -v g="$goal" 'BEGIN {printf "%.4f", c * 1000 / g}')
    log "paced run: goal $(thousands "$goal") req/s (50% of $(thousands "$max")); calibrating"
    WRK_SCRIPT=$WORK/paced.lua run_wrk "$WORK/paced-calibration$label.out" \
        "http://127.0.0.1:$port" 3 "$PACE_CONNECTIONS" \
        -- scenario=assign_known known="$KNOWN_UNITS" pace_ms="$cycle_ms"
    # Per connection: rate = 1 / (think + overhead); solve for the think time that gives goal.
    overhead_ms=$(awk -v c="$PACE_CONNECTIONS" -v r="${R[rps]}" -v t="$cycle_ms" \
        'BEGIN {o = c * 1000 / r - t; printf "%.4f", (o > 0 ? o : 0)}')
    pace_ms=$(awk -v t="$cycle_ms" -v o="$overhead_ms" 'BEGIN {p = t - o; printf "%.4f", (p > 0.05 ? p : 0.05)}')
    WRK_SCRIPT=$WORK/paced.lua run_wrk "$WORK/paced$label.out" "http://127.0.0.1:$port" \
        "$DURATION" "$PACE_CONNECTIONS" -- scenario=assign_known known="$KNOWN_UNITS" pace_ms="$pace_ms"
    local share
    share=$(awk -v r="${R[rps]}" -v m="$max" 'BEGIN {printf "%.0f", 100 * r / m}')
    add_row "a'. assign, known unit, paced at ~50% of max ($share% reached)" "banditd${label:+ on $label}" ""
    P99[paced$label]=${R[p99_us]}
    target "${label:+Redis: }p99, known-unit assign at ~50% load ($share% of max)" "≤ 2 ms" \
        "$(ms "${R[p99_us]}") ms" "$(at_most "${R[p99_us]}" 2000)"
    NOTES+=("### Latency at ~50% load${label:+ (banditd on $label)}

Method: wrk2 is not packaged for Debian, so each of $PACE_CONNECTIONS connections waits an
exponentially distributed think time (mean ${pace_ms} ms, calibrated by a 3 s run) before each
request (benches/load/lua/pace.lua). Offered rate: $(thousands "${R[rps]}") req/s, $share% of the
$(thousands "$max") req/s maximum. Closed loop per connection, so latencies are not corrected for
coordinated omission as wrk2's are: a stall longer than the think time delays the requests behind
it instead of counting their wait. p50 $(ms "${R[p50_us]}") ms, p99 $(ms "${R[p99_us]}") ms,
p99.9 $(ms "${R[p999_us]}") ms, max $(ms "${R[max_us]}") ms.")
}

run_scenarios() {
    start_main_servers
    local name list
    IFS=, read -r -a list <<<"$SCENARIOS"
    for name in "${list[@]}"; do
        case $name in
        assign_known) measure assign_known "a. assign, known sticky unit (GET)" "$CONNECTIONS" \
            scenario=assign_known known="$KNOWN_UNITS" ;;
        assign_new) measure assign_new "b. assign, new unit every request (GET)" "$CONNECTIONS" \
            scenario=assign_new ;;
        per_request) measure per_request "c. assign, per-request experiment (GET)" "$CONNECTIONS" \
            scenario=per_request ;;
        event_single) measure event_single "d. 1 event per POST (durable ack)" "$CONNECTIONS" \
            scenario=events batch=1 format=json ev_base="$EV_CURSOR" ;;
        # The durable writes again at SATURATED_CONNECTIONS: with CONNECTIONS (64) a closed
        # loop waits on each group commit's fsync and leaves the server's core partly idle
        # (its CPU share says how much), so only a load that fills the core measures what
        # one core of banditd can do. Baseline and banditd run at the same count.
        assign_new_saturated) measure assign_new_saturated \
            "b2. assign, new unit every request (GET), $SATURATED_CONNECTIONS connections" \
            "$SATURATED_CONNECTIONS" scenario=assign_new ;;
        event_single_saturated) measure event_single_saturated \
            "d2. 1 event per POST (durable ack), $SATURATED_CONNECTIONS connections" \
            "$SATURATED_CONNECTIONS" scenario=events batch=1 format=json ev_base="$EV_CURSOR" ;;
        events_bulk) measure events_bulk "e. 1,000 events per POST (NDJSON)" "$BULK_CONNECTIONS" \
            scenario=events batch=1000 format=ndjson ev_base="$EV_CURSOR" ;;
        mixed) measure mixed "f. mixed: 90% assign (known) / 10% 1-event POST" "$CONNECTIONS" \
            scenario=mixed mix_events=0.1 known="$KNOWN_UNITS" ev_base="$EV_CURSOR" ;;
        paced)
            measure_paced
            ((REDIS)) && measure_paced "$REDIS_BANDITD_PORT" "$REDIS_BANDITD_PID" \
                "${REDIS_RPS[assign_known]:-}" redis
            ;;
        *) die "unknown scenario '$name'" ;;
        esac
    done
    ratio_target assign_known "assign, known sticky unit" 0.8
    ratio_target assign_new "assign, new unit" 0.6
    ratio_target per_request "assign, per-request" 0.9
    ratio_target event_single "single event per POST" 0.5
    ratio_target assign_new_saturated "assign, new unit, $SATURATED_CONNECTIONS connections" 0.6
    ratio_target event_single_saturated "single event per POST, $SATURATED_CONNECTIONS connections" 0.5
    if [[ -n ${EVS[events_bulk]:-} ]]; then
        target "bulk ingest (1,000 per POST)" "≥ 500,000 events/s" \
            "$(thousands "${EVS[events_bulk]}") events/s" "$(at_least "${EVS[events_bulk]}" 500000)"
    fi
    ((REDIS)) && redis_targets
    return 0
}
