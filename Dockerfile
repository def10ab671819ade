# Multi-stage build of wecampus: a static binary (pure-Go SQLite, CGO off) on distroless, non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t wecampus .
#   docker run -v $PWD/config.yaml:/etc/wecampus/config.yaml:ro -v wecampus-data:/var/lib/wecampus -p 8080:8080 wecampus
#
# What the build downloads: the two base images below and the Go modules listed in go.sum, nothing
# else. There is no "# syntax=" line, so no Dockerfile frontend image is pulled (the builder's
# built-in frontend runs this file); GOTOOLCHAIN=local forbids a Go toolchain download. Without
# internet access:
#   - base images: pull them beforehand (docker pull, or a registry mirror the daemon is set up for);
#   - modules: from a module proxy inside the school,
#       docker build --build-arg GOPROXY=https://goproxy.example.edu.cn -t wecampus .
#     or vendored into the build context (go build then reads vendor/ and fetches nothing):
#       go mod vendor && docker build -t wecampus .
#
# The Go image is pinned by tag to go.mod's go line (go 1.26.8). A digest pin is stricter, since a
# tag can be moved: look the digest up with
#   docker buildx imagetools inspect golang:1.26.8-bookworm
# (or docker inspect --format '{{index .RepoDigests 0}}' after a pull) and write
# FROM golang:1.26.8-bookworm@sha256:<digest>; the same for the distroless image.
#
# RUN --mount=type=cache needs BuildKit: the default builder since Docker 23 (buildah and podman
# understand it too).

FROM golang:1.26.8-bookworm AS build
# Where modules come from: a proxy URL, "off" with a vendor/ directory, or the public default.
ARG GOPROXY=https://proxy.golang.org,direct
# GOTOOLCHAIN=local: never download a toolchain; the image is exactly go.mod's go version.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=${GOPROXY}
WORKDIR /src
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
# The image has no shell, curl or wget: the binary asks its own /readyz (server.addr :8080).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/wecampus", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/wecampus"]
CMD ["serve", "--config", "/etc/wecampus/config.yaml"]
