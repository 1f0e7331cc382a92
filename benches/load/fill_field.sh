#!/usr/bin/env bash
# fill_field.sh NAME: prints field NAME of the `FILL name=value ...` line that banditd-fill
# (benches/load/fill.rs) printed, read from stdin. A field is matched by its whole name:
# `seconds` is not `event_seconds` (a greedy `sed` on `seconds=` read the events' time, 0.000
# for a fill without events, into the scale report's fill time).
set -euo pipefail
[[ $# == 1 ]] || { echo "usage: fill_field.sh NAME < FILL-line" >&2; exit 2; }
awk -v name="$1" '/^FILL / {
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == name) { print kv[2]; found = 1; exit }
    }
} END { if (!found) exit 1 }'
