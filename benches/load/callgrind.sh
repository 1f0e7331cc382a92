# shellcheck shell=bash
# Callgrind helpers shared by the instruction-counting benches (assign_cost.sh, bulk_cost.sh).
# Sourced after lib.sh; they use its start_server, wait_ready, port_free and die, and the
# caller's WORK and PORT.

# under_callgrind NAME READY_SECONDS CMD...: starts CMD under callgrind, one dump per thread
# (`--separate-threads=yes`) to $WORK/NAME.cg.*, and waits for its /readyz; sets SERVER_PID.
# CALLGRIND_ARGS adds callgrind options (e.g. `--cache-sim=yes`, which adds the simulated
# cache misses to the dumps: read them with KEEP_WORK=1 and callgrind_annotate, since the
# reports here count instructions only).
under_callgrind() {
    local name=$1 ready=$2
    shift 2
    port_free "$PORT" || die "port $PORT is in use; set BANDITD_PORT"
    local extra
    read -r -a extra <<<"${CALLGRIND_ARGS:-}"
    start_server "$name under callgrind" "$WORK/$name.log" valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/$name.cg" --dump-instr=no --separate-threads=yes \
        "${extra[@]}" "$@"
    wait_ready "http://127.0.0.1:$PORT/readyz" "$SERVER_PID" "$ready" >/dev/null
}

# dump NAME LABEL [DEADLINE_SECONDS]: writes the counters since the last zeroing to new dumps
# of NAME's run, one per thread, and prints their paths joined by commas.
dump() {
    local name=$1 label=$2 files count=-1
    callgrind_control -d "$label" "$SERVER_PID" >/dev/null
    local deadline=$((SECONDS + ${3:-60}))
    # Done once some dump carries the label and no more appear for a second.
    while :; do
        files=$(grep -l -m1 -- "$label" "$WORK/$name.cg."* 2>/dev/null | paste -sd, -) || true
        if [[ -n $files ]]; then
            [[ $(tr ',' '\n' <<<"$files" | wc -l) == "$count" ]] && break
            count=$(tr ',' '\n' <<<"$files" | wc -l)
            sleep 1
            continue
        fi
        ((SECONDS < deadline)) || die "callgrind wrote no dump for $label"
        sleep 0.2
    done
    echo "$files"
}

# top FILE DIVISOR TOP: the TOP functions of FILE by inclusive instructions, each divided by
# DIVISOR (requests or events), as Markdown table rows. (callgrind_annotate runs from `/`: in
# the source tree it shortens names; callgrind_parts.py.)
top() {
    (cd / && callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null |
        awk -v n="$2" -v top="$3" '
            /^-+$/ { dashes++; next }
            dashes >= 4 && /^ *[0-9,]+ / && shown < top {
                ir = $1; gsub(",", "", ir)
                fn = $0; sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", fn)
                sub(/ \[[^]]*\]$/, "", fn); sub(/^[^:]*:/, "", fn)
                gsub(/\|/, "\\|", fn)
                if (length(fn) > 140) fn = substr(fn, 1, 140) "…"
                printf "| %.0f | `%s` |\n", ir / n, fn
                shown++
            }')
}
