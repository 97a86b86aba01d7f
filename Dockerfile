# syntax=docker/dockerfile:1
# pgveil's image: a static binary on distroless, running as a non-root user.
#
#   docker build -t pgveil .
#   docker run --rm pgveil version
#
# Build from a git checkout: the binary is built with the same flags as CI
# (.ci/run; internal/deploy checks that they agree), and -buildvcs=true stamps
# the commit into it (pgveil version, pgveil_build_info), so .dockerignore
# keeps .git in the build context. Without .git the build still works and the
# version reads "(devel)".

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=true -o /out/pgveil ./cmd/pgveil \
 && /out/pgveil version \
 && mkdir -p /out/var/lib/pgveil

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pgveil /pgveil
# Where large transactions wait until they commit (run's --spill-dir defaults
# to TMPDIR when only pgveil's user can write it, as here); docker-compose.yml
# mounts a volume here, and the root file system can be read-only.
COPY --from=build --chown=65532:65532 /out/var/lib/pgveil /var/lib/pgveil
ENV TMPDIR=/var/lib/pgveil
USER 65532:65532
EXPOSE 9187
ENTRYPOINT ["/pgveil"]
CMD ["help"]
