# Builds the stagehand binary and ships it on a slim Debian. The user is
# numeric (10001) so that Kubernetes can check runAsNonRoot without reading
# /etc/passwd; deploy/kubernetes runs the pods as that uid.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin stagehand

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 stagehand \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/stagehand stagehand
COPY --from=build /src/target/release/stagehand /usr/local/bin/stagehand
USER 10001:10001
WORKDIR /var/lib/stagehand
ENV STAGEHAND_BIND=0.0.0.0:8080 STAGEHAND_DATA_DIR=/var/lib/stagehand/data
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["stagehand"]
CMD ["serve"]
