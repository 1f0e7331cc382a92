#!/usr/bin/env bash
# The API contract test: schemathesis fuzzes a live banditd against its own `GET /openapi.json`,
# once with every key set (each route gets the key its security scheme names) and once with
# none. Every check must pass: no 5xx, every status, content type, header and body as the
# document says (two exceptions by design: scripts/schemathesis.toml and the run without keys
# below say which and why). `scripts/test.sh` runs it; it installs schemathesis into .venv/ when missing.
#
#   scripts/contract.sh                          # both runs
#   CONTRACT_EXAMPLES=400 CONTRACT_SEED=7 scripts/contract.sh
#                       # more examples per operation (default 150), another seed (default 11)
#
# The server is the debug binary of the current tree, on a free port, a temporary data dir
# and a temporary copy of experiments/; it is stopped on exit, whatever happens.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${CONTRACT_EXAMPLES:-150}
VENV="$ROOT/.venv"

# A venv needs Debian's python3-venv (ensurepip); install it when missing, as test.sh does.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    sudo=
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    echo "scripts/contract.sh: installing python3-venv" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [[ ! -x "$VENV/bin/st" ]] ||
    [[ $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null) != "$SCHEMATHESIS_VERSION" ]]; then
    echo "scripts/contract.sh: installing schemathesis $SCHEMATHESIS_VERSION into .venv/" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --bin banditd
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/banditd"

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME [ENV=VALUE…]: a fresh server with its own data dir and experiment copy.
start_server() {
    local name=$1
    shift
    mkdir -p "$WORK/$name"
    cp -r experiments "$WORK/$name/experiments"
    PORT=$(free_port)
    env -u BANDITD_ADMIN_KEY -u BANDITD_EVENTS_KEY -u BANDITD_ASSIGN_KEY -u BANDITD_METRICS_KEY "$@" \
        RUST_LOG=warn "$BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$WORK/$name/data" \
        --experiments "$WORK/$name/experiments" --history-interval 1s \
        >"$WORK/$name/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" \
            >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "scripts/contract.sh: the server did not start:" >&2
    cat "$WORK/$name/server.log" >&2
    exit 1
}

# fuzz NAME [schemathesis options…]
fuzz() {
    local name=$1
    shift
    echo "== contract: $name ==" >&2
    local status=0
    local config="$WORK/$name.toml"
    cp "$ROOT/scripts/schemathesis.toml" "$config"
    for scheme in admin events assign metrics; do
        local variable="BANDITD_${scheme^^}_KEY"
        if [[ -n ${!variable:-} ]]; then
            printf '\n[auth.openapi.%s_key]\nbearer = "${%s}"\n' "$scheme" "$variable" >>"$config"
        fi
    done
    # From the temp dir: schemathesis keeps a cache of past crashes in `.schemathesis/` of its
    # working directory, and every run starts clean.
    (cd "$WORK" && SCHEMATHESIS_HOOKS="$ROOT/scripts/contract_hooks.py" "$VENV/bin/st" \
        --config-file "$config" run \
        "http://127.0.0.1:$PORT/openapi.json" \
        --max-examples "$EXAMPLES" --seed "${CONTRACT_SEED:-11}" --workers 2 \
        --phases examples,coverage,fuzzing \
        --generation-database none \
        --no-color "$@") || status=$?
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "scripts/contract.sh: the server died during the $name run:" >&2
        tail -50 "$WORK/$name/server.log" >&2
        status=1
    fi
    return $status
}

failed=0
KEYS=(BANDITD_ADMIN_KEY=contract-admin-key BANDITD_EVENTS_KEY=contract-events-key
    BANDITD_ASSIGN_KEY=contract-assign-key BANDITD_METRICS_KEY=contract-metrics-key)
start_server keys "${KEYS[@]}"
export "${KEYS[@]}"
fuzz keys || failed=1
stop_server
unset BANDITD_ADMIN_KEY BANDITD_EVENTS_KEY BANDITD_ASSIGN_KEY BANDITD_METRICS_KEY

start_server open
# No key is set, so every route is open by design: a request without `Authorization` is valid
# here, and `ignored_auth` and `missing_required_header` would report exactly that.
fuzz open --exclude-checks ignored_auth,missing_required_header \
    --generation-with-security-parameters false || failed=1
stop_server

if ((failed)); then
    echo "scripts/contract.sh: the API broke its contract (see above)" >&2
    exit 1
fi
echo "scripts/contract.sh: the API kept its contract in both runs" >&2
