# Builds the stagehand binary and ships it on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin stagehand

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/stagehand stagehand
COPY --from=build /src/target/release/stagehand /usr/local/bin/stagehand
USER stagehand
WORKDIR /var/lib/stagehand
ENV STAGEHAND_BIND=0.0.0.0:8080 STAGEHAND_DATA_DIR=/var/lib/stagehand/data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["stagehand"]
CMD ["serve"]
