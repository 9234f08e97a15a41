# The Setpoint server image for manifests/ (docs/kubernetes.md). Build with:
#   docker build -t <registry>/setpoint:<tag> .
# SWIFT_IMAGE must be a Swift 6.3 toolchain image (the version this package is developed with).
ARG SWIFT_IMAGE=swift:6.3-bookworm
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libsqlite3-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product setpoint --static-swift-stdlib \
 && install -D .build/release/setpoint /out/setpoint

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libsqlite3-0 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/setpoint /usr/local/bin/setpoint
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/setpoint"]
CMD ["server", "--host", "0.0.0.0", "--data-dir", "/data"]
