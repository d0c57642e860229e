# syntax=docker/dockerfile:1

# difybot and difysim: static Go binaries on Alpine, run as an unprivileged user.
#
#   docker build -t difybot .                                   # or: docker compose build
#   docker run --rm -p 8080:8080 --env-file .env -v difybot-data:/data difybot
#   docker run --rm --env-file .env difybot doctor              # any difybot command
#   docker run --rm -p 5001:5001 --entrypoint difysim difybot -addr :5001 -scenario ok
#
# deploy/image_test.go runs the go build commands below exactly as written (with /out/ in a temporary
# directory), checks the binaries are static and starts difybot as this image's user: keep them one command a line.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
ENV GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# Cross-compiled for the platform being built (docker buildx build --platform linux/arm64 …); no C toolchain needed.
# -tags nodynamic: the HEIC decoder (github.com/gen2brain/heic) then uses only its WebAssembly build and never
# tries a system libheif, whose loader would make the binary dynamically linked.
ARG TARGETOS TARGETARCH
# The build context has no .git, so the version comes in as an argument: docker build --build-arg VERSION=$(git describe --tags --always) .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -tags nodynamic -trimpath -ldflags="-s -w -X main.releaseVersion=${VERSION}" -o /out/difybot ./cmd/difybot && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/difysim ./cmd/difysim

# Alpine rather than distroless: the health check needs wget, and operators need sqlite3 for online backups
# (docker compose exec difybot sqlite3 /data/difybot.db ".backup /data/backup.db").
FROM alpine:3.22
RUN apk add --no-cache ca-certificates sqlite tzdata \
 && addgroup -S -g 10001 difybot \
 && adduser -S -D -H -u 10001 -G difybot -h /data -s /sbin/nologin difybot \
 && mkdir -p /data \
 && chown 10001:10001 /data
COPY --from=build /out/difybot /out/difysim /usr/local/bin/
# The SQLite database and the web chat's uploads live in /data; a named volume keeps them across upgrades.
ENV DATA_DIR=/data HTTP_ADDR=:8080
WORKDIR /data
VOLUME /data
USER 10001:10001
EXPOSE 8080
# /healthz answers 200 while the process serves HTTP. The port follows HTTP_ADDR (":8080" → 8080); -Y off keeps
# an HTTP_PROXY meant for Dify, Slack or LINE away from this loopback request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD wget -q -Y off -O /dev/null "http://127.0.0.1:${HTTP_ADDR##*:}/healthz" || exit 1
ENTRYPOINT ["difybot"]
CMD ["serve"]
