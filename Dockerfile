# syntax=docker/dockerfile:1
#
# bbb-webhooks in a container: `docker build -t bbb-webhooks .`, or `docker compose up` with the
# docker-compose.yml beside this file.
#
# Configuration comes from environment variables (docs/configuration.md): at least SHARED_SECRET
# and REDIS_URL, plus SERVER_BIND_IP=0.0.0.0 (and PROM_HOST=0.0.0.0 with PROM_ENABLED=true) so
# that the ports are reachable from outside the container. A YAML file can be mounted at
# /etc/bigbluebutton/bbb-webhooks/config.yml (read when present) or anywhere with
# BBB_WEBHOOKS_CONFIG=/path. The image sets no such variable itself: environment variables win
# over files, so a default here could not be changed from a mounted file.
#
# No HEALTHCHECK: the runtime image has no HTTP client (no curl, no wget) and the API's address
# and port are configurable. Probe GET /ready (200 when Redis is connected, the hooks loaded and
# the channels subscribed; 503 otherwise) and GET /health (process alive) from the orchestrator
# instead (a Kubernetes httpGet probe), or see docker-compose.yml for a probe that uses bash.

# Rust 1.88 or newer (Cargo.toml's rust-version): the code uses let chains.
ARG RUST_VERSION=1.88

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Everything but target/ and .git (see .dockerignore). Only the tests read ../shared, and the
# build does not run them.
COPY . .
# The full (not slim) image brings the C compiler that ring (rustls' crypto provider) builds its
# assembly and C parts with. The cache mounts keep the crates and the build between runs; the
# binary is copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/bbb-webhooks /out/bbb-webhooks

FROM debian:bookworm-slim
# CA certificates for https:// callbacks; nothing else. Not pinned (hadolint DL3008), on purpose:
# the pin would hold back the Debian security updates of the CA list (bookworm-security ships a
# newer ca-certificates than bookworm itself), and a superseded version disappears from the
# archive, which breaks the build. The base image's tag already fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bbb-webhooks \
    && useradd --system --uid 10001 --gid bbb-webhooks --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin bbb-webhooks
COPY --from=build /out/bbb-webhooks /usr/local/bin/bbb-webhooks
USER 10001:10001
# 3005: the hooks API, /health and /ready (api.port). 3004: Prometheus metrics (prometheus.port,
# only with PROM_ENABLED=true).
EXPOSE 3005 3004
# SIGTERM (docker stop) drains: intake stops, callbacks in flight get 5 s, the rest stays queued
# in Redis. The default 10 s stop timeout is enough.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bbb-webhooks"]
CMD ["serve"]
