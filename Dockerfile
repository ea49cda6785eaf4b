# Dockerfile: builds the static katana binary and ships it alone in a
# scratch image, with a CA bundle for https origins.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t katana .
#   docker run -p 8080:8080 -v katana-cache:/var/cache/katana \
#     -v ./katana.toml:/etc/katana/katana.toml:ro katana
#
# Port 9090 is the admin listener (metrics, purge, pprof): publish it only
# to the network Prometheus scrapes from, never to clients.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -tags nodynamic -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/katana . \
 && mkdir -p /out/cache

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/katana /usr/local/bin/katana
# scratch has no shell to make directories: copy an empty one, owned by
# the user Katana runs as, for the cache volume.
COPY --from=build --chown=65532:65532 /out/cache /var/cache/katana
USER 65532:65532
# The built-in config caches in ./data; a config file is read from
# /etc/katana/katana.toml when one is mounted there.
WORKDIR /var/cache/katana
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/katana"]
CMD ["--listen", "0.0.0.0:8080", "--admin", "0.0.0.0:9090"]
