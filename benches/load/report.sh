# The Markdown report of benches/load/run.sh (sourced).

# write_report FILE
write_report() {
    local file=$1 cpu commit
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    # The caches' sizes name the host better than its CPU model does on a VM: the same code
    # measured 0.8x on one 2-core "AMD EPYC" VM and 0.5-0.6x on another, at the same
    # instruction counts (benches/load/results/s21-2026-12-02.md).
    local caches
    caches=$(lscpu 2>/dev/null |
        awk -F': +' '/^L[23] cache/ {printf "%s%s %s", sep, substr($1, 1, 2), $2; sep = ", "}')
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
    {
        echo "# banditd load test"
        echo
        echo "- Date: $STARTED_AT; mode: $MODE (${DURATION} s per scenario)$( ((SCALE)) && echo ", scale $(thousands "$SCALE_UNITS") units")$( ((SOAK_MIN)) && echo ", soak $SOAK_MIN min")"
        echo "- Machine: $(nproc) cores, ${cpu:-unknown CPU}${caches:+ ($caches)}, Linux $(uname -r), $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
        echo "- Load average (1/5/15 min) before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "  (anything well above 1 before the run means other work shared the cores)"
        echo "- Commit: $commit; $(rustc --version 2>/dev/null || echo 'rustc unknown')"
        echo "- Servers pinned to core $SERVER_CORE with one HTTP worker (banditd's store writer"
        echo "  thread shares that core); wrk pinned to core $CLIENT_CORE, one thread, $CONNECTIONS connections;"
        echo "  $BULK_CONNECTIONS for bulk events; both at nice $NICE. Known units: $(thousands "$KNOWN_UNITS")."
        echo
        if ((${#ROWS[@]})); then
            echo "## Scenarios"
            echo
            echo "Latencies in ms. Errors: non-2xx / socket errors / timeouts. Refused: events answered"
            echo "200 but not applied. Ratio: banditd req/s ÷ the mean of the baseline req/s right before and right after."
            echo "CPU: % of one core over the run (server: all its threads; wrk: the client, to show"
            echo "when the client rather than the server is the limit). RSS: server, at the end, MiB."
            echo
            echo "| scenario | server | req/s | events/s | p50 | p99 | p99.9 | errors | refused | ratio | server CPU | wrk CPU | RSS |"
            echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            printf '%s\n' "${ROWS[@]}"
            echo
        fi
        if ((${#COSTS[@]})); then
            echo "## Cost per applied event (banditd)"
            echo
            echo "Server CPU time (user + system, all threads) and bytes written to the device"
            echo "(/proc/PID/io write_bytes) over the run, divided by the events applied."
            echo
            echo "| scenario | events applied | CPU µs per event | bytes written per event |"
            echo "| --- | ---: | ---: | ---: |"
            printf '%s\n' "${COSTS[@]}"
            echo
        fi
        if ((${#TARGETS[@]})); then
            echo "## Targets"
            echo
            echo "| what | target | measured | |"
            echo "| --- | --- | --- | --- |"
            printf '%s\n' "${TARGETS[@]}"
            echo
        fi
        local note
        for note in "${NOTES[@]}"; do
            printf '%s\n\n' "$note"
        done
    } >"$file"
}
