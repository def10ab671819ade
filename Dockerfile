# syntax=docker/dockerfile:1
# Multi-stage build of wecampus: a static binary (pure-Go SQLite, CGO off) on distroless, non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t wecampus .
#   docker run -v $PWD/config.yaml:/etc/wecampus/config.yaml:ro -v wecampus-data:/var/lib/wecampus -p 8080:8080 wecampus
#
# The build needs only the base images and Go modules (GOPROXY or a pre-filled module cache via
# GOFLAGS=-mod=mod and the cache mounts below); it downloads no other tools.

FROM golang:1.26 AS build
WORKDIR /src
# GOTOOLCHAIN=local: never download a toolchain (offline builds); the image must be >= go.mod's go line.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wecampus . \
 && mkdir -p /out/etc/wecampus /out/var/lib/wecampus

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wecampus /usr/local/bin/wecampus
# Empty, nonroot-owned directories: the config (mount read-only) and data such as a SQLite file.
COPY --from=build --chown=nonroot:nonroot /out/etc/wecampus /etc/wecampus
COPY --from=build --chown=nonroot:nonroot /out/var/lib/wecampus /var/lib/wecampus
USER nonroot:nonroot
VOLUME ["/etc/wecampus", "/var/lib/wecampus"]
EXPOSE 8080
ENV WECAMPUS_CONFIG=/etc/wecampus/config.yaml
ENTRYPOINT ["/usr/local/bin/wecampus"]
CMD ["serve", "--config", "/etc/wecampus/config.yaml"]
