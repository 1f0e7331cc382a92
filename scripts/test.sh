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
    apt_install "$package" "for $command"
}

# apt_install PACKAGE WHY: installs PACKAGE with apt-get (as root, or with passwordless sudo).
apt_install() {
    local package=$1 why=$2
    local sudo=
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=sudo
        else
            echo "scripts/test.sh: $package is missing ($why); install it with:" >&2
            echo "    sudo apt-get install -y $package" >&2
            exit 2
        fi
    fi
    echo "scripts/test.sh: installing $package ($why)" >&2
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
# tests/api/replicas.rs): standalone, three- and six-node Clusters joined by `redis-cli
# --cluster create`, and `redis-server --sentinel`, password-protected or not
# (src/store/redis/cluster_tests.rs, sentinel_tests.rs, sentinel_contract_tests.rs,
# tests/api/replicas_modes.rs, tests/api/replicas_failover.rs). redis-cli comes with
# redis-server (its redis-tools dependency), Sentinel mode is the same binary.
need_apt redis-server redis-server
need_apt redis-cli redis-tools

# The README's quick start is run as written (tests/api/docs_readme.rs): its curl lines.
need_apt curl curl

# redis-server processes running in a test's temp dir (the harness's `--dir`, under $TMPDIR).
test_redis_servers() {
    local pid cwd
    for pid in $(pgrep -x redis-server 2>/dev/null); do
        cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
        [[ $cwd == "${TMPDIR:-/tmp}"/.tmp* ]] && echo "$pid $cwd"
    done
    return 0
}
redis_before=$(test_redis_servers)

cargo test "$@"

# Every test's redis-server is killed by its PID when the test's harness drops. One still
# running in a test's temp dir after the tests outlived its test (a hook the store kept held
# its harness until the process ended): the run fails on it, after killing it.
leaked=$(comm -13 <(sort <<<"$redis_before") <(test_redis_servers | sort) | sed '/^$/d')
if [[ -n $leaked ]]; then
    echo "test.sh: redis-server processes left running by the tests (pid, dir):" >&2
    echo "$leaked" >&2
    kill -9 $(cut -d' ' -f1 <<<"$leaked") 2>/dev/null || true
    exit 1
fi

# docker-compose.yml (both profiles) parses and resolves as Compose reads it, alone and with the
# local-image override; the stack itself is not started here: scripts/scale_out_local.sh runs
# and checks it (README, "Scaling out"; several minutes and a Docker daemon). A run narrowed by
# cargo test arguments skips it.
if (($# == 0)); then
    need_apt docker-compose docker-compose
    BANDITD_TOKEN_SECRET=check REDIS_PASSWORD=check \
        docker-compose --file docker-compose.yml --profile scale-out config --quiet
    BANDITD_TOKEN_SECRET=check REDIS_PASSWORD=check \
        docker-compose --file docker-compose.yml --file docker-compose.local.yml \
        --profile scale-out config --quiet
    bash -n scripts/scale_out_local.sh
    python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" scripts/scale_out_proof.py
fi

# The browser tests (tests/browser/): the dashboard and the clients in Debian's headless
# Chromium, driven by playwright-core (from npm, pinned by package-lock.json) against the debug
# binary. A run narrowed by cargo test arguments skips them.
if (($# == 0)); then
    need_apt chromium chromium
    need_apt chromedriver chromium-driver
    need_apt npm npm
    cargo build --bin banditd
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi

# The client libraries (clients/): the browser client's logic under node's own test runner
# (fakes for fetch, localStorage and timers), its hand-written types checked by TypeScript
# (from npm, pinned by clients/js/package-lock.json), and the Python client
# with pytest against a live debug binary, from .venv/ (pytest and pandas pinned below, the
# client installed editable). A run narrowed by cargo test arguments skips them.
PYTEST_VERSION=9.2.0
PANDAS_VERSION=3.1.1
if (($# == 0)); then
    need_apt node nodejs
    need_apt npm npm
    (cd clients/js && node --test test/*.test.js &&
        npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck)

    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3-venv "for python3 -m venv"
    VENV="$ROOT/.venv"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    installed() { "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }
    if [[ $(installed pytest) != "$PYTEST_VERSION" || $(installed pandas) != "$PANDAS_VERSION" ]]; then
        echo "scripts/test.sh: installing pytest $PYTEST_VERSION and pandas $PANDAS_VERSION into .venv/" >&2
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "pytest==$PYTEST_VERSION" "pandas==$PANDAS_VERSION"
    fi
    # Editable, so the tests always run this checkout's client.
    if [[ $("$VENV/bin/python" -c 'import banditd_client, os; print(os.path.dirname(banditd_client.__file__))' 2>/dev/null) != "$ROOT/clients/python/src/banditd_client" ]]; then
        echo "scripts/test.sh: installing clients/python into .venv/ (editable)" >&2
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -e clients/python
    fi
    cargo build --bin banditd
    (cd clients/python && "$VENV/bin/python" -m pytest -q -p no:cacheprovider)
fi

# The API contract (scripts/contract.sh): schemathesis, from PyPI into .venv/, fuzzes a live
# server against its own /openapi.json. A run narrowed by cargo test arguments skips it.
if (($# == 0)); then
    scripts/contract.sh
fi
