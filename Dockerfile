# syntax=docker/dockerfile:1
# mondiapay-token-proxy: a release build in a Rust image, run from a small Debian image as a
# non-root user. Build (BuildKit, the default builder of current Docker):
#   docker build -t mondiapay-token-proxy .
# deploy/container-test.sh builds and runs the runtime stage below exactly as written, with the
# build stage replaced by a release binary built outside the image.
#
# Base images are pinned by version tag. Pinning by digest (rust:…@sha256:…) is stronger but the
# digests cannot be looked up from the machine this file is tested on (no registry is reachable
# there): add them where you build and have a registry.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# SQLite's build settings (.cargo/config.toml) and the order of the code (layout/, see build.rs).
COPY .cargo ./.cargo
COPY layout ./layout
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
# The registry and the target directory live in BuildKit caches, kept between builds: a change
# to Cargo.lock rebuilds only the crates that changed, a source change only this crate. The
# binary is copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mondiapay-token-proxy \
    && cp target/release/mondiapay-token-proxy /usr/local/bin/mondiapay-token-proxy

FROM debian:bookworm-slim
# No packages added: the binary trusts the Mozilla roots compiled into it (webpki-roots, for
# MondiaPay and PostgreSQL alike), so ca-certificates would be unused. A private CA for
# PostgreSQL is a mounted file named in store.url (sslrootcert=...): see the README.
RUN groupadd --system --gid 10001 token-proxy \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin token-proxy \
    && mkdir -p /data \
    && chown token-proxy:token-proxy /data
COPY --from=build /usr/local/bin/mondiapay-token-proxy /usr/local/bin/mondiapay-token-proxy
# The image's own defaults (every interface, the store in /data) as the lowest layer of settings,
# so a mounted config file (TOKEN_PROXY_CONFIG or --config) and TOKEN_PROXY__* variables win.
COPY config/container.toml /etc/mondiapay-token-proxy/defaults.toml
# A file name, not a secret (hadolint sees TOKEN in the name): DL3064.
# hadolint ignore=DL3064
ENV TOKEN_PROXY_DEFAULTS=/etc/mondiapay-token-proxy/defaults.toml
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["mondiapay-token-proxy", "healthcheck"]
ENTRYPOINT ["mondiapay-token-proxy"]
CMD ["serve"]
