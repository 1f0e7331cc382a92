# The scale test of benches/load/run.sh (sourced): SCALE_UNITS sticky units written by
# banditd-fill, then known-unit assign throughput against a small store filled the same way
# (KNOWN_UNITS units), disk bytes per unit, RSS and startup time to /readyz.

# scale_assign NAME KNOWN: known-unit assign on the running banditd, units s-0 .. s-(KNOWN-1).
scale_assign() {
    SERVER_PID=$BANDITD_PID
    log "scale: $1 (units drawn uniformly from $(thousands "$2"))"
    start_profile "scale-$1"
    run_wrk "$WORK/scale-$1.out" "http://127.0.0.1:$BANDITD_PORT" "$DURATION" "$CONNECTIONS" \
        -- scenario=assign_known known="$2" known_prefix=s-
    stop_profile
}

run_scale() {
    # The scale test needs the core and the memory to itself.
    [[ -n $BANDITD_PID ]] && { stop_pid "$BANDITD_PID"; BANDITD_PID=; }
    [[ -n $BASELINE_PID ]] && { stop_pid "$BASELINE_PID"; BASELINE_PID=; }

    local small=$WORK/scale-small big=$WORK/scale-big
    fill "$small" "$KNOWN_UNITS" s-
    start_banditd "$small" "$WORK/scale-small.log"
    scale_assign small "$KNOWN_UNITS"
    local small_rps=${R[rps]}
    add_row "assign, known unit: store of $(thousands "$KNOWN_UNITS") units" banditd ""
    stop_pid "$BANDITD_PID"

    fill "$big" "$SCALE_UNITS" s-
    local fill_secs=$FILL_SECS bytes per_unit per_million
    bytes=$(du -sb "$big" | cut -f1)
    per_unit=$(awk -v b="$bytes" -v n="$SCALE_UNITS" 'BEGIN {printf "%.0f", b / n}')
    per_million=$(awk -v s="$fill_secs" -v n="$SCALE_UNITS" 'BEGIN {printf "%.1f", s * 1e6 / n}')
    start_banditd "$big" "$WORK/scale-big.log"
    local startup_ms=$STARTUP_MS ready_rss
    ready_rss=$(($(rss_kb "$BANDITD_PID") / 1024))
    scale_assign all "$SCALE_UNITS"
    local big_rps=${R[rps]} big_ratio
    big_ratio=$(ratio "$big_rps" "$small_rps")
    add_row "assign, known unit: store of $(thousands "$SCALE_UNITS"), any unit" banditd "**${big_ratio}×** small"
    scale_assign hot "$KNOWN_UNITS"
    add_row "assign, known unit: store of $(thousands "$SCALE_UNITS"), $(thousands "$KNOWN_UNITS") hot units" \
        banditd "$(ratio "${R[rps]}" "$small_rps")× small"
    stop_pid "$BANDITD_PID"
    BANDITD_PID=
    local bytes_after
    bytes_after=$(du -sb "$big" | cut -f1)

    target "$(thousands "$SCALE_UNITS") units: known-unit assign vs small store" "≥ 0.67×" \
        "${big_ratio}×" "$(at_least "$big_ratio" 0.67)"
    target "$(thousands "$SCALE_UNITS") units: disk per stored unit" "≤ 150 B" "$per_unit B" \
        "$(at_most "$per_unit" 150)"
    target "$(thousands "$SCALE_UNITS") units: start to /readyz 200" "≤ 5 s" \
        "$(awk -v m="$startup_ms" 'BEGIN {printf "%.2f", m / 1000}') s" "$(at_most "$startup_ms" 5000)"
    NOTES+=("### Scale: $(thousands "$SCALE_UNITS") sticky units

- Filled by banditd-fill through \`Store::insert_sticky\` (group commits) in ${fill_secs} s:
  ${per_million} s per million units.
- Data dir after the fill: $(thousands "$bytes") bytes = **${per_unit} bytes per unit** (sled's
  files, \`du -sb\`; unit ids \`s-0\` … \`s-$((SCALE_UNITS - 1))\`); $(thousands "$bytes_after") bytes after
  the server ran and stopped.
- Start to /readyz 200: **${startup_ms} ms** (the page cache was warm from the fill; a cold
  disk adds the time to read sled's snapshot). RSS when ready: ${ready_rss} MiB; after the load:
  ${R[rss_mb]} MiB.
- Known-unit assign, units drawn uniformly from all $(thousands "$SCALE_UNITS") (cold keys):
  $(thousands "$big_rps") req/s vs $(thousands "$small_rps") req/s on a store of
  $(thousands "$KNOWN_UNITS") units filled the same way: **${big_ratio}×**.")
}
