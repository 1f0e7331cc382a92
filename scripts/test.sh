#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust: installs what the tests need
# when it is missing (Debian packages with apt-get, PyPI packages into .venv/), then runs
# every suite. `.ci/run` calls it after rustfmt and clippy.
#
#   scripts/test.sh [cargo test arguments…]
#
# Installing needs root (or sudo); without either, it stops with the exact command to run.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

APT_UPDATED=0

# need_apt COMMAND PACKAGE: installs PACKAGE when COMMAND is not on the PATH.
need_apt() {
    local command=$1 package=$2
    command -v "$command" >/dev/null 2>&1 && return 0
    local sudo=
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=sudo
        else
            echo "scripts/test.sh: '$command' is missing; install it with:" >&2
            echo "    sudo apt-get install -y $package" >&2
            exit 2
        fi
    fi
    echo "scripts/test.sh: installing $package (for $command)" >&2
    if ((!APT_UPDATED)); then
        $sudo apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}

# The shipped alert rules: valid, and firing exactly when their unit tests say.
need_apt promtool prometheus
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
# The Redis backend's tests start their own redis-server (src/store/redis/tests.rs,
# tests/api/replicas.rs): standalone, a three-node Cluster joined by `redis-cli --cluster
# create`, and `redis-server --sentinel` (src/store/redis/cluster_tests.rs,
# tests/api/replicas_modes.rs). redis-cli comes with redis-server (its redis-tools
# dependency), Sentinel mode is the same binary.
need_apt redis-server redis-server
need_apt redis-cli redis-tools

# The README's quick start is run as written (tests/api/docs_readme.rs): its curl lines.
need_apt curl curl

cargo test "$@"

# The API contract (scripts/contract.sh): schemathesis, from PyPI into .venv/, fuzzes a live
# server against its own /openapi.json. A run narrowed by cargo test arguments skips it.
if (($# == 0)); then
    scripts/contract.sh
fi
