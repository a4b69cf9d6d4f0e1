# syntax=docker/dockerfile:1
#
# The rabt image: one static-ish binary on distroless (glibc, CA roots, no shell).
#
#   docker build -t rabt:local \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# Dependencies are compiled in a layer of their own (cargo-chef), keyed on the
# Cargo.toml files and Cargo.lock only, so a change to rabt's own code rebuilds
# rabt alone. The migrations (sqlx::migrate!), the email templates, the common
# password list and the invoice font are compiled into the binary with
# include_str!/include_bytes!, so migrations/ and templates/ are not copied: the
# binary is all the image needs. SQL is checked at build time against .sqlx/
# (SQLX_OFFLINE=true comes from .cargo/config.toml), so no database is needed.
#
# Build and runtime are both Debian 12 (bookworm): the binary links against the
# glibc it runs with.

FROM rust:1-bookworm AS chef
# Symbols are stripped in both the dependency layer and the final build, so the
# two agree on the profile and the cooked dependencies are reused.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --bin rabt --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin rabt

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="rabt" \
      org.opencontainers.image.description="The rabt backend: HTTP and WebSocket API, background jobs and migrations in one binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /build/target/release/rabt /usr/local/bin/rabt
# The local defaults (.data/mail, .data/files) are relative to the working
# directory; nonroot's home is the one place it may write. Production sets
# RABT_SMTP_URL and an s3:// RABT_STORAGE_URL and runs with a read-only root.
WORKDIR /home/nonroot
# nonroot (65532) of distroless, by number so that Kubernetes' runAsNonRoot can
# check it.
USER 65532:65532
ENV RABT_BIND=0.0.0.0:8080
EXPOSE 8080
# `rabt healthcheck` asks this process's own /health/ready (no shell or curl in
# the image) and exits 0 when it answers 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/rabt", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/rabt"]
CMD ["serve"]
