# syntax=docker/dockerfile:1
# mondiapay-token-proxy: a release build in a Rust image, run from a small Debian image as a
# non-root user. Build: docker build -t mondiapay-token-proxy .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
# The placeholder build left newer artifacts than the sources copied in: make cargo rebuild.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin mondiapay-token-proxy

FROM debian:bookworm-slim
# Debian's security updates replace package versions, so pinning one breaks rebuilds (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 token-proxy \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin token-proxy \
    && mkdir -p /data \
    && chown token-proxy /data
COPY --from=build /src/target/release/mondiapay-token-proxy /usr/local/bin/mondiapay-token-proxy
USER 10001:10001
WORKDIR /data
# Inside a container both listeners bind every interface: publish the public port to the
# internet (through TLS), keep the internal port on the merchant's private network only.
# (The names start with TOKEN_PROXY; none of these values is a secret: DL3064.)
# hadolint ignore=DL3064
ENV TOKEN_PROXY__PUBLIC__LISTEN=0.0.0.0:8080 \
    TOKEN_PROXY__INTERNAL__LISTEN=0.0.0.0:8081 \
    TOKEN_PROXY__STORE__URL=sqlite:///data/tokens.db
VOLUME ["/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["mondiapay-token-proxy", "healthcheck"]
ENTRYPOINT ["mondiapay-token-proxy"]
CMD ["serve"]
