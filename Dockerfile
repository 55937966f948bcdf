# syntax=docker/dockerfile:1
#
# Gatehouse as a container image: one static binary on distroless.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t gatehouse .
#   docker run -p 6188:6188 -v gatehouse-state:/var/lib/gatehouse gatehouse
#
# /etc/gatehouse/gatehouse.yaml  the config (deploy/gatehouse.yaml; mount yours
#                                over /etc/gatehouse; edits reload)
# /var/lib/gatehouse             state volume: set acme.storage to
#                                /var/lib/gatehouse/acme
# 6188 the proxy, 9901 the admin listener (/healthz, /readyz, /metrics)
#
# Checked without a Docker daemon by test/deploy (see docs/operations.md).

# build compiles the static binary with the Go release go.mod asks for.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY gatehouse.go gatehouse.yaml ./
COPY www ./www
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gatehouse ./cmd/gatehouse \
 && mkdir -p /out/state

# Final stage: no shell, no package manager; CA certificates, tzdata and a
# nonroot user (65532) come with the base.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY deploy/gatehouse.yaml /etc/gatehouse/gatehouse.yaml
COPY www /usr/share/gatehouse/www
COPY --from=build --chown=65532:65532 /out/state /var/lib/gatehouse
USER 65532:65532
EXPOSE 6188 9901
VOLUME ["/var/lib/gatehouse"]
# gatehouse healthcheck GETs the admin listener's /healthz (the address is
# read from the config); distroless has no curl or shell.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/gatehouse", "healthcheck", "-c", "/etc/gatehouse/gatehouse.yaml"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run", "-c", "/etc/gatehouse/gatehouse.yaml"]
