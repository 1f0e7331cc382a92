# The cost of metrics (sourced by benches/load/run.sh, `--metrics-ab ROUNDS`): the same banditd
# build twice, one with `--metrics on` (the default) and one with `--metrics off`, each on its
# own fresh data dir with the same KNOWN_UNITS warmed up, both pinned to SERVER_CORE (only the
# one under load is busy). Per round and scenario: off, on, off again, same load; the ratio is
# on ÷ the mean of the two off runs, so drift of a shared machine over the triple does not
# tilt it. Reported: every round, and per scenario the mean ratio and its spread.

# ab_start NAME PORT METRICS: starts one banditd; sets AB_PID.
ab_start() {
    local name=$1 port=$2 metrics=$3
    port_free "$port" || die "port $port is in use; set BANDITD_PORT"
    start_server "banditd ($name)" "$WORK/$name.log" "$BIN/banditd" serve \
        --bind "127.0.0.1:$port" --data-dir "$WORK/data-$name" \
        --experiments "$WORK/experiments" --workers 1 --metrics "$metrics"
    AB_PID=$SERVER_PID
    wait_ready "http://127.0.0.1:$port/readyz" "$AB_PID" 60 >/dev/null
    # warm_up reads these two; shadowed here, so the main server's stay as they are.
    local BANDITD_PORT=$port BANDITD_PID=$AB_PID
    warm_up
}

# ab_run PORT PID NAME SCRIPT_ARGS...: one wrk run; leaves R filled.
ab_run() {
    local port=$1 pid=$2 name=$3
    shift 3
    SERVER_PID=$pid
    run_wrk "$WORK/ab-$name.out" "http://127.0.0.1:$port" "$DURATION" "$CONNECTIONS" -- "$@"
    ((R[errors] == 0)) || { FAILED=1; log "errors in metrics A/B run $name; see $WORK/ab-$name.out"; }
}

# run_metrics_ab ROUNDS
run_metrics_ab() {
    local rounds=$1 on_port=$((BANDITD_PORT + 2)) off_port=$((BANDITD_PORT + 3))
    local on_pid off_pid round scenario args off_before off_after on_rps ratio
    local -A ratios=()
    local rows=()
    ab_start metrics-on "$on_port" on
    on_pid=$AB_PID
    ab_start metrics-off "$off_port" off
    off_pid=$AB_PID
    # /metrics is live on one and off on the other: a check that the flag did what it says.
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$on_port/metrics") == 200 ]] ||
        die "the metrics-on server does not serve /metrics"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$off_port/metrics") == 404 ]] ||
        die "the metrics-off server serves /metrics"
    for ((round = 1; round <= rounds; round++)); do
        for scenario in assign_known per_request; do
            case $scenario in
            assign_known) args=(scenario=assign_known known="$KNOWN_UNITS") ;;
            per_request) args=(scenario=per_request) ;;
            esac
            log "metrics A/B round $round/$rounds, $scenario: off, on, off"
            ab_run "$off_port" "$off_pid" "$scenario-$round-off1" "${args[@]}" run="ab${round}o1"
            off_before=${R[rps]}
            ab_run "$on_port" "$on_pid" "$scenario-$round-on" "${args[@]}" run="ab${round}n"
            on_rps=${R[rps]}
            local on_p99=${R[p99_us]} on_cpu=${R[server_cpu]}
            ab_run "$off_port" "$off_pid" "$scenario-$round-off2" "${args[@]}" run="ab${round}o2"
            off_after=${R[rps]}
            ratio=$(awk -v on="$on_rps" -v a="$off_before" -v b="$off_after" \
                'BEGIN {printf "%.4f", on / ((a + b) / 2)}')
            ratios[$scenario]+="$ratio "
            rows+=("| $scenario | $round | $(thousands "$off_before") | $(thousands "$on_rps") | $(thousands "$off_after") | $(ms "$on_p99") | ${on_cpu}% | $ratio |")
        done
    done
    stop_pid "$on_pid"
    stop_pid "$off_pid"
    local summary=() mean spread
    for scenario in assign_known per_request; do
        read -r mean spread < <(tr ' ' '\n' <<<"${ratios[$scenario]}" | awk 'NF {
            n++; s += $1; q += $1 * $1
            if (n == 1 || $1 < lo) lo = $1
            if (n == 1 || $1 > hi) hi = $1 }
            END { m = s / n; sd = (n > 1) ? sqrt((q - n * m * m) / (n - 1)) : 0
                  printf "%.3f %.3f–%.3f,_sd_%.3f\n", m, lo, hi, sd }')
        summary+=("| $scenario | $rounds | $mean | ${spread//_/ } |")
        target "metrics on ÷ off, $scenario (mean of $rounds)" "≥ 0.97×" "${mean}× (${spread//_/ })" \
            "$(at_least "$mean" 0.97)"
    done
    NOTES+=("### Cost of metrics (\`--metrics on\` ÷ \`--metrics off\`)

Two banditd servers from the same build, each on a fresh data dir with the same
$(thousands "$KNOWN_UNITS") known units warmed up, one with metrics on and one with them off, both
on core $SERVER_CORE (only the one under load is busy). Per round and scenario: off, on, off again
($DURATION s each, $CONNECTIONS connections); ratio = on ÷ mean of the two off runs.

| scenario | round | off req/s | on req/s | off again | on p99 ms | on CPU | ratio |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${rows[@]}")

| scenario | rounds | mean ratio | spread (min–max, sd) |
| --- | ---: | ---: | --- |
$(printf '%s\n' "${summary[@]}")")
}
