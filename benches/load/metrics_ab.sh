# The cost of metrics (sourced by benches/load/run.sh, `--metrics-ab ROUNDS`): the same banditd
# build twice, one with `--metrics on` (the default) and one with `--metrics off`, each on its
# own fresh data dir with the same KNOWN_UNITS warmed up, both pinned to SERVER_CORE (only the
# one under load is busy). Per round and scenario: off, on, off again, same load; the ratio is
# on ÷ the mean of the two off runs, so drift of a shared machine over the triple does not
# tilt it. Reported: every round, and per scenario the mean ratio and its spread; and the same
# for the server's CPU time per request (all its threads, from /proc/PID/task/*/schedstat in
# nanoseconds), which a busy shared machine disturbs far less than throughput: a server starved
# of its core serves fewer requests, but each still costs what it costs.

# cpu_ns PID: CPU time of every thread of PID so far, in nanoseconds.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f", t}'; }

# ab_start NAME PORT METRICS: starts one banditd; sets AB_PID.
ab_start() {
    local name=$1 port=$2 metrics=$3
    port_free "$port" || die "port $port is in use; set BANDITD_PORT"
    start_server "banditd ($name)" "$WORK/$name.log" "$BIN/banditd" serve \
        --bind "127.0.0.1:$port" --data-dir "$WORK/data-$name" \
        --experiments "$WORK/experiments" --workers 1 --metrics "$metrics" \
        --access-log "${ACCESS_LOG:-off}"
    AB_PID=$SERVER_PID
    wait_ready "http://127.0.0.1:$port/readyz" "$AB_PID" 60 >/dev/null
    # warm_up reads these two; shadowed here, so the main server's stay as they are.
    local BANDITD_PORT=$port BANDITD_PID=$AB_PID
    warm_up
}

# ab_run PORT PID NAME SCRIPT_ARGS...: one wrk run; leaves R filled, with R[cpu_us_per_req].
ab_run() {
    local port=$1 pid=$2 name=$3 before after
    shift 3
    SERVER_PID=$pid
    before=$(cpu_ns "$pid")
    run_wrk "$WORK/ab-$name.out" "http://127.0.0.1:$port" "$DURATION" "$CONNECTIONS" -- "$@"
    after=$(cpu_ns "$pid")
    R[cpu_us_per_req]=$(awk -v d="$((after - before))" -v n="${R[requests]}" \
        'BEGIN {printf "%.2f", (n > 0) ? d / n / 1000 : 0}')
    ((R[errors] == 0)) || { FAILED=1; log "errors in metrics A/B run $name; see $WORK/ab-$name.out"; }
}

# run_metrics_ab ROUNDS
run_metrics_ab() {
    local rounds=$1 on_port=$((BANDITD_PORT + 2)) off_port=$((BANDITD_PORT + 3))
    local on_pid off_pid round scenario args off_before off_after on_rps ratio
    local off_cpu_before off_cpu_after on_cpu_us cpu_ratio
    local -A ratios=() cpu_ratios=()
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
            off_cpu_before=${R[cpu_us_per_req]}
            ab_run "$on_port" "$on_pid" "$scenario-$round-on" "${args[@]}" run="ab${round}n"
            on_rps=${R[rps]}
            on_cpu_us=${R[cpu_us_per_req]}
            local on_p99=${R[p99_us]} on_cpu=${R[server_cpu]}
            ab_run "$off_port" "$off_pid" "$scenario-$round-off2" "${args[@]}" run="ab${round}o2"
            off_after=${R[rps]}
            off_cpu_after=${R[cpu_us_per_req]}
            ratio=$(awk -v on="$on_rps" -v a="$off_before" -v b="$off_after" \
                'BEGIN {printf "%.4f", on / ((a + b) / 2)}')
            # Requests per CPU-second, on ÷ off: below 1 when metrics cost CPU.
            cpu_ratio=$(awk -v on="$on_cpu_us" -v a="$off_cpu_before" -v b="$off_cpu_after" \
                'BEGIN {printf "%.4f", ((a + b) / 2) / on}')
            ratios[$scenario]+="$ratio "
            cpu_ratios[$scenario]+="$cpu_ratio "
            rows+=("| $scenario | $round | $(thousands "$off_before") | $(thousands "$on_rps") | $(thousands "$off_after") | $(ms "$on_p99") | ${on_cpu}% | $ratio | $off_cpu_before / $on_cpu_us / $off_cpu_after | $cpu_ratio |")
        done
    done
    stop_pid "$on_pid"
    stop_pid "$off_pid"
    local summary=() mean spread cpu_mean cpu_spread
    for scenario in assign_known per_request; do
        read -r mean spread < <(ab_stats "${ratios[$scenario]}")
        read -r cpu_mean cpu_spread < <(ab_stats "${cpu_ratios[$scenario]}")
        summary+=("| $scenario | $rounds | $mean | ${spread//_/ } | $cpu_mean | ${cpu_spread//_/ } |")
        target "metrics on ÷ off, $scenario, req/s (mean of $rounds)" "≥ 0.97×" \
            "${mean}× (${spread//_/ })" "$(at_least "$mean" 0.97)"
        target "metrics on ÷ off, $scenario, req per CPU-s (mean of $rounds)" "≥ 0.97×" \
            "${cpu_mean}× (${cpu_spread//_/ })" "$(at_least "$cpu_mean" 0.97)"
    done
    NOTES+=("### Cost of metrics (\`--metrics on\` ÷ \`--metrics off\`)

Two banditd servers from the same build, each on a fresh data dir with the same
$(thousands "$KNOWN_UNITS") known units warmed up, one with metrics on and one with them off, both
on core $SERVER_CORE (only the one under load is busy). Per round and scenario: off, on, off again
($DURATION s each, $CONNECTIONS connections); ratio = on ÷ mean of the two off runs.

| scenario | round | off req/s | on req/s | off again | on p99 ms | on CPU | req/s ratio | CPU µs/req off / on / off | req per CPU-s ratio |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${rows[@]}")

| scenario | rounds | req/s ratio, mean | spread (min–max, sd) | req per CPU-s ratio, mean | spread |
| --- | ---: | ---: | --- | ---: | --- |
$(printf '%s\n' "${summary[@]}")")
}

# ab_stats "R1 R2 ...": prints "MEAN MIN–MAX,_sd_SD" of the ratios.
ab_stats() {
    tr ' ' '\n' <<<"$1" | awk 'NF {
        n++; s += $1; q += $1 * $1
        if (n == 1 || $1 < lo) lo = $1
        if (n == 1 || $1 > hi) hi = $1 }
        END { m = s / n; v = (n > 1) ? (q - n * m * m) / (n - 1) : 0
              printf "%.3f %.3f–%.3f,_sd_%.3f\n", m, lo, hi, (v > 0) ? sqrt(v) : 0 }'
}
