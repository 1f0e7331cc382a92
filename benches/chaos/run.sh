#!/usr/bin/env bash
# Disk-full chaos test: banditd on a small tmpfs under mixed load; the filesystem is filled,
# held full, then freed. Root only (it mounts a tmpfs); bounded in time (~1 minute).
#
#   sudo benches/chaos/run.sh [--size-mb N] [--full-secs S] [--no-build]
#
# Checks (benches/chaos/driver.rs; exit 1 if any fails):
#   - /readyz answers 503, and events answer 503, within 1 s of the store's first failed commit;
#   - every assign answers 200; a degraded one serves the default variant, uncounted, no token;
#     a token only ever comes with a counted exposure;
#   - /readyz 200, and a write acknowledged, within 2 s of space returning;
#   - everything acknowledged is sent again: every acked unit keeps its variant, every acked
#     event comes back a duplicate (0 lost);
#   - no arm shows more reward than exposures;
#   - after a clean stop, every counter equals what the stored records imply (audit).
# Environment: CARGO_TARGET_DIR, CHAOS_PROFILE (release; debug for a quick look), CHAOS_PORT (18090), KEEP_WORK=1 (keep the dir and server log).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZE_MB=20
FULL_SECS=4
BUILD=1
while (($#)); do
    case $1 in
    --size-mb) SIZE_MB=$2; shift ;;
    --full-secs) FULL_SECS=$2; shift ;;
    --no-build) BUILD=0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ $(id -u) -ne 0 ]]; then
    echo "benches/chaos/run.sh mounts a tmpfs: run it as root" >&2
    exit 2
fi

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${CHAOS_PROFILE:-release}
if ((BUILD)); then
    (cd "$ROOT" && cargo build --profile "${PROFILE/debug/dev}" --bin banditd --bin banditd-chaos)
fi
BIN=$TARGET/$PROFILE/banditd
CHAOS=$TARGET/$PROFILE/banditd-chaos
PORT=${CHAOS_PORT:-18090}

WORK=$(mktemp -d /tmp/banditd-chaos.XXXXXX)
MNT=$WORK/fs
mkdir -p "$MNT"
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    umount "$MNT" 2>/dev/null || true
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

mount -t tmpfs -o size="${SIZE_MB}m" banditd-chaos "$MNT"
mkdir -p "$MNT/data"
cp -r "$HERE/experiments" "$WORK/experiments"

"$BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$MNT/data" --experiments "$WORK/experiments" \
    --no-watch >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

STATUS=0
timeout 180 "$CHAOS" load --addr "http://127.0.0.1:$PORT" --fill-dir "$MNT" \
    --full-secs "$FULL_SECS" || STATUS=1

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || { echo "chaos: the server did not exit cleanly" >&2; STATUS=1; }
SERVER_PID=
# The audit needs a little room to open the store (sled writes at open).
"$CHAOS" audit --data-dir "$MNT/data" || STATUS=1
echo "chaos: server log: $(grep -c . "$WORK/server.log") lines; store errors logged:" \
    "$(grep -ci 'error' "$WORK/server.log" || true)"
grep -i 'store' "$WORK/server.log" | grep -iE 'fail|recover' | head -5 || true
exit $STATUS
