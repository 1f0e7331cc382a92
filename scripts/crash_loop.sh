#!/usr/bin/env bash
# The long crash loop of the sled store (tests/api/crash_loop.rs): `kill -9` the server at
# random moments under a mixed load KILLS times (default 100), checking after every restart
# that every acknowledged event is applied exactly once, counters equal the records, no arm
# has more reward than exposures and every answered unit keeps its variant.
#
# usage: scripts/crash_loop.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-100}
[[ $KILLS =~ ^[0-9]+$ ]] || { echo "usage: $0 [KILLS]" >&2; exit 2; }
BANDITD_CRASH_KILLS=$KILLS exec cargo test --test api crash_loop -- --nocapture
