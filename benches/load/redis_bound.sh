#!/usr/bin/env bash
# What bounds banditd on Redis: runs benches/load/run.sh --redis with the given options while
# benches/load/redis_bound.py samples redis-server, banditd --redis and wrk (CPU from /proc,
# script calls from INFO commandstats) and perf records redis-server's fdatasync and
# epoll_wait tracepoints (software tracepoints: no hardware counters needed; root), with
# banditd's commit timeline on (BANDITD_REDIS_TIMELINE). Prints, per window of script calls
# (one per Redis scenario, in the order run), each process's CPU, script calls/s, Redis's own
# time per call, event-loop passes, calls and fdatasync time per pass, and how Redis's wall
# time splits into fsync, work and idle; then the commit timeline (redis_timeline.py).
#
#   benches/load/redis_bound.sh OUTDIR [run.sh options, e.g. --quick --no-build --scenarios assign_new]
#
# REDIS_PORT and REDIS_BANDITD_PORT as run.sh's (18379, 18082).

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: redis_bound.sh OUTDIR [run.sh options]}
shift
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REDIS_PORT=${REDIS_PORT:-18379}
REDIS_BANDITD_PORT=${REDIS_BANDITD_PORT:-18082}
command -v perf >/dev/null || { echo "needs perf (apt-get install -y linux-perf)" >&2; exit 1; }
rm -f "$OUT/samples.tsv" "$OUT/samples.tsv.stop" "$OUT/timeline.txt"

python3 "$HERE/redis_bound.py" sample "$REDIS_PORT" "$REDIS_BANDITD_PORT" "$OUT/samples.tsv" &
SAMPLER=$!
# perf on redis-server once run.sh has started it.
(
    until pid=$(ss -Hltnp "sport = :$REDIS_PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2) &&
        [[ -n $pid ]]; do sleep 0.2; done
    exec perf record -q -k CLOCK_MONOTONIC -o "$OUT/perf.data" \
        -e syscalls:sys_enter_fdatasync -e syscalls:sys_exit_fdatasync \
        -e syscalls:sys_enter_epoll_wait -e syscalls:sys_exit_epoll_wait -p "$pid"
) &
PERF=$!
finish() {
    touch "$OUT/samples.tsv.stop"
    wait "$SAMPLER" 2>/dev/null || true
    kill -INT "$PERF" 2>/dev/null || true
    wait "$PERF" 2>/dev/null || true
}
trap finish EXIT

BANDITD_REDIS_TIMELINE=$OUT/timeline.txt "$HERE/run.sh" --redis "$@" >"$OUT/run.log" 2>&1 || {
    echo "run.sh failed; see $OUT/run.log" >&2
    exit 1
}
finish
trap - EXIT
perf script -i "$OUT/perf.data" -F time,event >"$OUT/perf.txt" 2>/dev/null
python3 "$HERE/redis_bound.py" report "$OUT/samples.tsv" "$OUT/perf.txt" "$OUT/timeline.txt"
echo
[[ -s $OUT/timeline.txt ]] && python3 "$HERE/redis_timeline.py" "$OUT/timeline.txt"
