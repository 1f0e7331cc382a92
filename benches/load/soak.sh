# The soak of benches/load/run.sh (sourced): the mixed load for SOAK_MIN minutes, RSS sampled
# every 10 s. Fails the run (exit 1) if RSS grows more than 10% after the first minute (the
# warm-up: caches filling, allocator arenas settling) beyond what the store's in-memory tables
# grew, or if any request fails.
#
# Why the tables are set apart: the embedded store keeps every sticky unit and every kept event
# id in memory (README, Durability), and the mixed load credits a fresh unit with every event,
# so those tables grow by design, and in steps (a table doubles at once). The server reports
# their heap bytes itself (banditd_store_table_bytes, from their capacities); any other growth,
# a leak included, still counts against the 10%. The report shows the raw growth too.

SOAK_SAMPLE_SECS=10
SOAK_MAX_GROWTH_PCT=10

run_soak() {
    start_main_servers
    local out=$WORK/soak.out secs=$((SOAK_MIN * 60)) wrk_pid ticks_before start t samples=()
    log "soak: mixed load for $SOAK_MIN min, RSS every $SOAK_SAMPLE_SECS s"
    SERVER_PID=$BANDITD_PID
    ticks_before=$(cpu_ticks "$BANDITD_PID")
    setsid taskset -c "$CLIENT_CORE" nice -n "$NICE" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --timeout 10s \
        -s "$LUA_DIR/load.lua" "http://127.0.0.1:$BANDITD_PORT" -- threads=1 scenario=mixed \
        mix_events=0.1 known="$KNOWN_UNITS" ev_base="$EV_CURSOR" run=soak >"$out" 2>&1 &
    wrk_pid=$!
    STARTED_PIDS+=("$wrk_pid")
    boost "$wrk_pid"
    start=$SECONDS
    samples+=("0 $(rss_kb "$BANDITD_PID") $(table_kb "$BANDITD_PORT")")
    while kill -0 "$wrk_pid" 2>/dev/null; do
        sleep "$SOAK_SAMPLE_SECS"
        kill -0 "$wrk_pid" 2>/dev/null || break
        t=$((SECONDS - start))
        samples+=("$t $(rss_kb "$BANDITD_PID") $(table_kb "$BANDITD_PORT")")
        ((t % 60 < SOAK_SAMPLE_SECS)) && log "soak: ${t} s, RSS $(($(rss_kb "$BANDITD_PID") / 1024)) MiB"
    done
    wait "$wrk_pid" || die "wrk failed during the soak; see $out"
    forget_pid "$wrk_pid"
    parse_result "$out" "$(($(cpu_ticks "$BANDITD_PID") - ticks_before))" ""
    ((R[highest_next] > EV_CURSOR)) && EV_CURSOR=${R[highest_next]}

    # Warm-up ends at the first sample at or after 60 s (or the first sample of a short soak).
    local warm_kb= warm_tables= final_kb final_tables sample kb tables
    local table="| t (s) | RSS (MiB) | store tables (MiB) |"$'\n'"| ---: | ---: | ---: |"
    for sample in "${samples[@]}"; do
        read -r t kb tables <<<"$sample"
        if [[ -z $warm_kb && ( $t -ge 60 || $SOAK_MIN -lt 2 ) && $t -gt 0 ]]; then
            warm_kb=$kb
            warm_tables=$tables
        fi
        final_kb=$kb
        final_tables=$tables
        table+=$'\n'"| $t | $((kb / 1024)) | $((tables / 1024)) |"
    done
    if [[ -z $warm_kb ]]; then
        warm_kb=$final_kb
        warm_tables=$final_tables
    fi
    local growth tables_growth beyond ok=1
    growth=$(awk -v w="$warm_kb" -v f="$final_kb" 'BEGIN {printf "%.1f", 100 * (f - w) / w}')
    tables_growth=$(awk -v w="$warm_kb" -v a="$warm_tables" -v b="$final_tables" \
        'BEGIN {printf "%.1f", 100 * (b - a) / w}')
    beyond=$(awk -v w="$warm_kb" -v f="$final_kb" -v a="$warm_tables" -v b="$final_tables" \
        'BEGIN {printf "%.1f", 100 * ((f - w) - (b - a)) / w}')
    (($(at_most "$beyond" "$SOAK_MAX_GROWTH_PCT"))) || ok=0
    ((R[errors] == 0 && R[rejected] == 0)) || ok=0
    ((ok)) || FAILED=1
    target "soak: RSS growth after the first minute, beyond the store's tables" \
        "≤ ${SOAK_MAX_GROWTH_PCT}%" "${beyond}% (raw ${growth}%, tables ${tables_growth}%)" \
        "$(at_most "$beyond" "$SOAK_MAX_GROWTH_PCT")"
    target "soak: failed requests / refused events" "0" "${R[errors]} / ${R[rejected]}" \
        "$(((R[errors] + R[rejected]) == 0 ? 1 : 0))"
    add_row "soak: mixed load, $SOAK_MIN min" banditd ""
    NOTES+=("### Soak ($SOAK_MIN min, mixed load)

$(thousands "${R[rps]}") req/s, $(thousands "${R[requests]}") requests, $(thousands "${R[applied]}") events
applied; ${R[non2xx]} non-2xx, ${R[socket_errors]} socket errors, ${R[timeouts]} timeouts,
${R[rejected]} refused events. RSS after warm-up $((warm_kb / 1024)) MiB (first sample at or after
60 s; a soak shorter than 2 min has no such window and uses its first sample), at the end
$((final_kb / 1024)) MiB: ${growth}%, of which the store's in-memory tables (every sticky unit
and kept event id, by design: \`banditd_store_table_bytes\`) $((warm_tables / 1024)) → $((final_tables / 1024)) MiB,
${tables_growth}% of the warm RSS; the rest ${beyond}% (limit ${SOAK_MAX_GROWTH_PCT}%): $( ((ok)) && echo pass || echo '**FAIL**').

$table")
}
