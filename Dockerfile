# Build stage: compile a release binary against the locked dependency tree.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# The commit `banditd --version` and GET /v1/admin/build report (the image has no .git):
# `docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) .`
ARG GIT_COMMIT=unknown
COPY src ./src
# Every target's source (the bench binaries are targets of the manifest too), the vendored
# actix-http (Cargo.toml's [patch.crates-io]) and the JS client the server embeds
# (GET /sdk/banditd.js). tests/api/dockerfile.rs checks this list against what the build reads.
COPY benches ./benches
COPY vendor ./vendor
COPY clients/js/src ./clients/js/src
RUN cargo build --release --locked --bin banditd

# Runtime stage: a slim image with just the binary.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/banditd banditd \
 && mkdir -p /var/lib/banditd /etc/banditd/experiments \
 && chown banditd /var/lib/banditd
COPY --from=build /src/target/release/banditd /usr/local/bin/banditd
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
