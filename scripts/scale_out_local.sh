#!/usr/bin/env bash
# Runs docker-compose.yml's scale-out profile on a machine whose Docker cannot pull from an image
# registry, and proves what the README's "Scaling out" section says about it.
#
#   scripts/scale_out_local.sh            images, up, proof, down (exit 1 on any failed check)
#   scripts/scale_out_local.sh images     only build the local images
#   scripts/scale_out_local.sh dockerfile build the repository's Dockerfile itself (both stages,
#                                         on local stand-ins for its base images) and run it
#   scripts/scale_out_local.sh up|proof|bench|down
#
# KEEP_STACK=1 leaves the stack up after the proof. `bench` brings the stack up on
# benches/load/experiments, measures it with wrk through nginx and writes
# benches/load/results/docker-<date>.md. The base image is built once and reused
# (`docker rmi banditd-local/bookworm` to rebuild it); the others are rebuilt on every run.
#
# The images come from Debian's archive alone: `debootstrap --variant=minbase` builds a bookworm
# root with Debian's redis-server, nginx-light and curl, `docker import` turns it into the base
# image, and three thin images on top of it run redis-server, nginx and banditd (the release
# binary built on this host, which is bookworm too, so the binary's glibc matches). The mirror is
# the one apt already uses here (or $DEBIAN_MIRROR). docker-compose.local.yml points the services
# at these images; docker-compose.yml itself still names the upstream images for machines that
# have a registry. Needs root (debootstrap, dockerd), Debian's docker.io and docker-compose.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PROJECT=${SCALE_OUT_PROJECT:-banditd-scaleout}
BASE=banditd-local/bookworm
COMPOSE=(docker-compose --project-name "$PROJECT" --file docker-compose.yml
    --file docker-compose.local.yml --profile scale-out)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'scale_out_local: %s\n' "$*" >&2; exit 1; }

need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    log "installing $2"
    apt-get install -y --no-install-recommends "$2" >/dev/null
}

ensure_dockerd() {
    need dockerd docker.io # the daemon: a docker CLI alone (as on some CI images) is not enough
    need docker-compose docker-compose
    docker info >/dev/null 2>&1 && return
    log "starting dockerd (vfs storage: works on any filesystem, copies whole layers)"
    nohup dockerd --storage-driver vfs >/tmp/scale_out_dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
    die "dockerd did not start (see /tmp/scale_out_dockerd.log)"
}

# The first bookworm mirror apt is configured with (deb822 or one-line format).
debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri ]]; then
        uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list \
            2>/dev/null || true)
    fi
    [[ -n $uri ]] || die "no Debian mirror in apt's sources; set DEBIAN_MIRROR"
    echo "$uri"
}

build_base() {
    if docker image inspect "$BASE" >/dev/null 2>&1; then return; fi
    need debootstrap debootstrap
    local root
    root=$(mktemp -d /var/tmp/scale-out-root.XXXXXX)
    chmod 755 "$root" # it becomes the image's /: mktemp's 0700 would lock out every non-root user
    log "debootstrap bookworm (minbase + redis-server, nginx-light, curl) into $root"
    debootstrap --variant=minbase \
        --include=ca-certificates,curl,redis-server,nginx-light \
        bookworm "$root" "$(debian_mirror)" >/tmp/scale_out_debootstrap.log 2>&1 \
        || { rm -rf "$root"; die "debootstrap failed (see /tmp/scale_out_debootstrap.log)"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    log "docker import $BASE"
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$root"
}

# docker build with an inline Dockerfile; $2 is the build context directory.
build_image() {
    local tag=$1 context=$2
    log "docker build $tag"
    docker build --quiet --tag "$tag" --file - "$context" >/dev/null
}

build_images() {
    ensure_dockerd
    build_base
    local ctx
    ctx=$(mktemp -d)
    build_image banditd-local/redis "$ctx" <<DOCKERFILE
FROM $BASE
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
DOCKERFILE
    build_image banditd-local/nginx "$ctx" <<DOCKERFILE
FROM $BASE
RUN rm -f /etc/nginx/sites-enabled/default \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
DOCKERFILE
    log "cargo build --release --bin banditd"
    cargo build --release --locked --bin banditd >&2
    # Without its debug info (the release profile keeps it for perf): 150 MB less per copy,
    # and vfs copies every layer per container.
    need strip binutils
    strip --strip-debug -o "$ctx/banditd" "$TARGET/release/banditd"
    # The runtime stage of the Dockerfile, on the imported base.
    build_image banditd-local/banditd "$ctx" <<DOCKERFILE
FROM $BASE
RUN useradd --system --uid 10001 --home /var/lib/banditd banditd \
 && mkdir -p /var/lib/banditd /etc/banditd/experiments \
 && chown banditd /var/lib/banditd
COPY banditd /usr/local/bin/banditd
USER banditd
ENV BANDITD_BIND=0.0.0.0:8080 \
    BANDITD_DATA_DIR=/var/lib/banditd \
    BANDITD_EXPERIMENTS=/etc/banditd/experiments \
    BANDITD_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/banditd"]
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["banditd"]
CMD ["serve"]
DOCKERFILE
    rm -rf "$ctx"
}

# The repository's Dockerfile itself, both stages, on stand-ins for the upstream images it names
# (nothing can be pulled here): its runtime base (`debian:bookworm-slim`) is the imported
# Debian base, and its build base (`rust:<version>-bookworm`) that base with gcc and this host's
# Rust toolchain (the sysroot's bin/ and lib/). Built with the host's network (crates.io and
# Debian's archive, as `docker build` would reach them elsewhere). Then the image must answer
# `banditd --version` with the commit, and serve the bundled experiments: /readyz, an assign.
# A stand-in tag that exists already (a real upstream image, on a machine that has one) is
# used as it is.
dockerfile_image() {
    ensure_dockerd
    build_base
    local rust_tag debian_tag ctx sysroot commit
    rust_tag=$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" {print $2; exit}' Dockerfile)
    debian_tag=$(awk 'toupper($1) == "FROM" && NF == 2 {print $2; exit}' Dockerfile)
    [[ -n $rust_tag && -n $debian_tag ]] || die "the Dockerfile's two FROM lines were not found"
    docker image inspect "$debian_tag" >/dev/null 2>&1 || docker tag "$BASE" "$debian_tag"
    if ! docker image inspect "$rust_tag" >/dev/null 2>&1; then
        sysroot=$(rustc --print sysroot)
        log "stand-in $rust_tag: $BASE, gcc, and $(rustc --version)"
        ctx=$(mktemp -d)
        cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/"
        # This host's CA bundle: where the egress to crates.io goes through a TLS proxy with
        # its own CA (which this host trusts), cargo inside the build must trust it too.
        cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
        docker build --quiet --network host --tag "$rust_tag" --file - "$ctx" >/dev/null <<DOCKERFILE ||
            { rm -rf "$ctx"; die "the stand-in $rust_tag did not build"; }
FROM $BASE
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY bin /usr/local/rust/bin
COPY lib /usr/local/rust/lib
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DOCKERFILE
        rm -rf "$ctx"
    fi
    commit=$(git -C "$ROOT" rev-parse HEAD)
    log "docker build of the Dockerfile (a release build inside: minutes)"
    docker build --network host --build-arg "GIT_COMMIT=$commit" \
        --tag banditd-local/dockerfile "$ROOT" >/tmp/scale_out_dockerfile.log 2>&1 \
        || die "docker build of the Dockerfile failed (see /tmp/scale_out_dockerfile.log)"
    docker run --rm banditd-local/dockerfile --version | grep -q "$commit" \
        || die "banditd --version in the image does not name $commit"
    local name=banditd-dockerfile-check port=${DOCKERFILE_PORT:-18095}
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run --detach --name "$name" --publish "127.0.0.1:$port:8080" \
        --volume "$ROOT/experiments:/etc/banditd/experiments:ro" banditd-local/dockerfile >/dev/null
    local ready=
    for _ in $(seq 60); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && { ready=1; break; }
        sleep 1
    done
    local answer
    answer=$(curl -fsS "http://127.0.0.1:$port/v1/experiments/homepage-headline/assign?unit=alice" \
        2>&1 || true)
    docker logs "$name" >/tmp/scale_out_dockerfile_run.log 2>&1 || true
    docker rm -f "$name" >/dev/null
    [[ -n $ready ]] || die "the image did not become ready (see /tmp/scale_out_dockerfile_run.log)"
    grep -q '"variant"' <<<"$answer" || die "the image's assign answered: $answer"
    log "the Dockerfile builds; its image serves: $answer"
}

# Secrets for the stack, generated once per machine and kept (mode 600) for the later steps.
load_env() {
    [[ -z ${SCALE_OUT_ENV_LOADED:-} ]] || return 0
    SCALE_OUT_ENV_LOADED=1
    local file=${SCALE_OUT_ENV:-/var/tmp/banditd-scale-out.env}
    if [[ ! -f $file ]]; then
        (umask 077; {
            echo "BANDITD_TOKEN_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
            echo "REDIS_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
            echo "BANDITD_EVENTS_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
            echo "BANDITD_ADMIN_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        } >"$file")
    fi
    set -a; source "$file"; set +a
}

wait_ready() {
    log "waiting for http://127.0.0.1:8081/readyz through nginx"
    for _ in $(seq 120); do
        curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && return
        sleep 1
    done
    "${COMPOSE[@]}" ps >&2 || true
    die "the stack did not become ready in 120 s"
}

up() {
    ensure_dockerd
    load_env
    log "docker-compose --profile scale-out up (local images)"
    "${COMPOSE[@]}" up --no-build --detach redis banditd-replica lb >&2
    wait_ready
}

down() {
    load_env
    log "docker-compose down (volumes too)"
    "${COMPOSE[@]}" down --volumes --remove-orphans >&2 || true
}

proof() {
    load_env
    python3 "$ROOT/scripts/scale_out_proof.py"
}

# One wrk run through nginx with benches/load/lua/load.lua; prints its RESULT line.
wrk_run() { # wrk_run DURATION_S CONNECTIONS SCRIPT_ARGS...
    local duration=$1 conns=$2
    shift 2
    wrk -t1 -c"$conns" -d"${duration}s" --timeout 10s \
        -s "$ROOT/benches/load/lua/load.lua" http://127.0.0.1:8081 -- threads=1 "$@" \
        | grep '^RESULT'
}

field() { sed -E "s/.* $1=([0-9.]+).*/\\1/" <<<"$2"; }

# prefill PREFIX COUNT: assigns the load-sticky units PREFIX0 .. PREFIX<COUNT-1> through nginx
# (load.lua's warm-up restarts at 0 on every wrk run, so the cursor is kept here).
prefill() {
    local prefix=$1 count=$2 next=0 lua r done_
    lua=$(mktemp --suffix .lua)
    cat >"$lua" <<'LUA'
local i, base, count, prefix = -1, 0, 0, ""
function init(args) prefix, base, count = args[1], tonumber(args[2]), tonumber(args[3]) end
function request()
   i = i + 1
   if base + i >= count then i = 0; base = 0 end
   return wrk.format("GET", "/v1/experiments/load-sticky/assign?unit=" .. prefix .. (base + i))
end
function done(summary) io.write(string.format("DONE %d\n", summary.requests)) end
LUA
    while ((next < count)); do
        r=$(wrk -t1 -c16 -d20s --timeout 10s -s "$lua" http://127.0.0.1:8081 -- "$prefix" "$next" \
            "$count" | sed -n 's/^DONE //p')
        next=$((next + r))
        log "assigned ${prefix}*: $next of $count"
    done
    rm -f "$lua"
}

# Throughput of the whole stack on this machine: every container, wrk and the host share its
# cores. Known-unit assign and bulk durable ingest (1,000 events per NDJSON POST) through nginx,
# on the load experiments of benches/load (the same scenarios as benches/load/run.sh).
bench() {
    need wrk wrk
    ensure_dockerd
    load_env
    down
    # load.lua sends no Authorization header with its event posts: no events key here.
    BANDITD_EVENTS_KEY='' SCALE_OUT_EXPERIMENTS=./benches/load/experiments up
    export BANDITD_EVENTS_KEY=
    local known=${BENCH_KNOWN:-10000} ev_units=${BENCH_EVENT_UNITS:-200000}
    local seconds=${BENCH_SECONDS:-20} out
    out=${BENCH_OUT:-$ROOT/benches/load/results/docker-$(date -u +%F).md}
    log "assigning $known known units and $ev_units event units through nginx"
    prefill k- "$known"
    prefill ev- "$ev_units"
    log "assign_known: ${seconds} s, 64 connections"
    local known_r events_r
    known_r=$(wrk_run "$seconds" 64 scenario=assign_known known="$known" run=b)
    log "events_bulk: ${seconds} s, 8 connections, 1,000 events per POST"
    local stats
    stats=$(mktemp)
    # Sampled halfway through the events run.
    (sleep $((seconds / 2)); docker stats --no-stream \
        --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}' $("${COMPOSE[@]}" ps -q) >"$stats") &
    events_r=$(wrk_run "$seconds" 8 scenario=events batch=1000 \
        format=ndjson ev_base=0 run=b)
    wait
    local load cpu
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    cpu=$(sed 's/^/    /' "$stats")
    rm -f "$stats"
    local secs_k secs_e
    secs_k=$(awk -v d="$(field duration_us "$known_r")" 'BEGIN {print d / 1e6}')
    secs_e=$(awk -v d="$(field duration_us "$events_r")" 'BEGIN {print d / 1e6}')
    {
        echo "# Scale-out profile under load, everything on one 2-core machine ($(date -u +%F))"
        echo
        echo "\`scripts/scale_out_local.sh bench\`: docker-compose.yml's scale-out profile on the"
        echo "local Debian images (docker-compose.local.yml: Debian's redis-server 7.0 with"
        echo "\`appendonly yes\`, \`appendfsync always\`; three banditd replicas, release build"
        echo "$(git -C "$ROOT" rev-parse --short HEAD); Debian's nginx 1.22 in front), dockerd"
        echo "with the vfs storage driver, and wrk, all on ONE 2-core machine with no pinning:"
        echo "Redis, three replicas, nginx and the load generator share two cores (other work on"
        echo "the machine too: load average after the runs $load). This is a"
        echo "floor for the profile, not a per-core figure: benches/load/run.sh --redis gives"
        echo "those. wrk through nginx on 127.0.0.1:8081, benches/load/lua/load.lua; no events"
        echo "key set (load.lua sends none). Known-unit assign: $known units assigned beforehand."
        echo "Bulk events: each for its own assigned, never rewarded unit (\`ev-<i>\`)."
        echo
        echo "| scenario | connections | requests/s | events/s | p50 | p99 | p99.9 | errors |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
        row() { # row NAME CONNS RESULT SECONDS
            local rps evs
            rps=$(awk -v n="$(field requests "$3")" -v s="$4" 'BEGIN {printf "%.0f", n / s}')
            evs=$(awk -v n="$(field applied "$3")" -v s="$4" 'BEGIN {printf "%.0f", n / s}')
            ((evs == 0)) && evs="–"
            printf '| %s | %s | %s | %s | %.2f ms | %.2f ms | %.2f ms | %s non-2xx, %s socket, %s refused |\n' \
                "$1" "$2" "$rps" "$evs" "$(field p50_us "$3")e-3" "$(field p99_us "$3")e-3" \
                "$(field p999_us "$3")e-3" "$(field non2xx "$3")" "$(field socket_errors "$3")" \
                "$(field rejected "$3")"
        }
        row "known-unit assign (GET, $known units)" 64 "$known_r" "$secs_k"
        row "bulk events (1,000 per NDJSON POST)" 8 "$events_r" "$secs_e"
        echo
        echo "Containers halfway through the events run (docker stats: CPU % of one core, memory):"
        echo
        echo '```'
        echo "$cpu"
        echo '```'
        echo
        echo "Raw wrk results:"
        echo
        echo '```'
        echo "assign_known $known_r"
        echo "events_bulk $events_r"
        echo '```'
    } >"$out"
    log "wrote $out"
    cat "$out"
    down
}

main() {
    case ${1:-all} in
        images) build_images ;;
        dockerfile) dockerfile_image ;;
        up) up ;;
        proof) proof ;;
        bench) bench ;;
        down) down ;;
        all)
            build_images
            down
            up
            local status=0
            proof || status=$?
            if ((status)); then
                "${COMPOSE[@]}" logs --tail 40 >&2 || true
            fi
            [[ -n ${KEEP_STACK:-} ]] || down
            exit "$status"
            ;;
        *) die "unknown command ${1}" ;;
    esac
}
main "$@"
