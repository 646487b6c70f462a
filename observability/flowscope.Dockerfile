# syntax=docker/dockerfile:1
# The Flowscope image: the release server and its site files (js, wasm, css), built the way
# scripts/run.sh builds them. Build from the repository root:
#
#   docker build -f observability/flowscope.Dockerfile -t flowscope .
#
# (observability/docker-compose.yml does this.) A cold build compiles the site builder (the
# workspace's `site` crate) and the whole workspace in release mode: expect about a quarter of an
# hour on two cores. The cache mounts keep the crate downloads and compiled dependencies
# between builds.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=22

# wasm-opt for release builds: npm's binaryen (Debian's binaryen 108 breaks hydration).
FROM node:${NODE_VERSION}-bookworm-slim AS wasm-opt
ARG BINARYEN_VERSION=132.0.0
RUN npm install --prefix /opt/binaryen --no-audit --no-fund --silent "binaryen@${BINARYEN_VERSION}"

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN rustup target add wasm32-unknown-unknown

COPY --from=wasm-opt /usr/local/bin/node /usr/local/bin/node
COPY --from=wasm-opt /opt/binaryen /opt/binaryen
ENV PATH="/opt/binaryen/node_modules/.bin:${PATH}"
RUN wasm-opt --version

WORKDIR /src
COPY . .
# As scripts/run.sh: the server and its site, precompressed (site/src/main.rs). The target dir is
# a cache mount, so the artefacts are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo site --release \
    && test -s target/site/pkg/flowscope.wasm \
    && mkdir -p /out \
    && cp target/release/flowscope /out/flowscope \
    && cp -r target/site /out/site

FROM debian:bookworm-slim AS runtime
# curl: the health check. ca-certificates: HTTPS from the http, notify and llm agents.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home flowscope \
    && mkdir -p /data \
    && chown flowscope:flowscope /data
WORKDIR /app
COPY --from=builder /out/flowscope /app/flowscope
COPY --from=builder /out/site /app/site
# A container must listen beyond its loopback, which Flowscope refuses without sign-in unless
# FLOWSCOPE_ALLOW_UNAUTHENTICATED=true is set at `docker run` (the compose file sets it).
ENV LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_OUTPUT_NAME=flowscope \
    FLOWSCOPE_LISTEN=0.0.0.0:3000 \
    FLOWSCOPE_DATABASE_URL=sqlite:///data/flowscope.db
USER flowscope
VOLUME ["/data"]
EXPOSE 3000
# /readyz: the server answers and its database is reachable and migrated (/healthz: answers).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:3000/readyz || exit 1
ENTRYPOINT ["/app/flowscope"]
CMD ["serve"]
