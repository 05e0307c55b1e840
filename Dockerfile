# syntax=docker/dockerfile:1
# The one Phoenix image: every role, all-in-one or one role per container (deploy/kubernetes runs it per role).
#   docker build -t phoenix .
#   docker run -p 8080:8080 -v phoenix-data:/var/lib/phoenix phoenix          # all-in-one on SQLite
# The build is offline once the crates are fetched; nothing is downloaded while the binary builds or runs.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The image's gcc is all the C the build needs: aws-lc (TLS, sealing stored secrets) builds with it, no cmake.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p phoenix \
    && install -D -m 0755 target/release/phoenix /out/phoenix

# glibc, libgcc and CA certificates, no shell, no package manager, user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/phoenix /usr/local/bin/phoenix
# SQLite files and the secrets key file of an all-in-one deployment; unused on PostgreSQL.
WORKDIR /var/lib/phoenix
ENV PHOENIX_LISTEN=0.0.0.0:8080 \
    PHOENIX_DATA_DIR=/var/lib/phoenix \
    PHOENIX_LOG_FORMAT=json
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/phoenix"]
CMD ["serve"]
