# ecgq on Debian bookworm, two images from one build (scripts/build-image tags both):
#   ecgq         (the last stage) the broker, the workers, the HTTP gateway and the producer CLI:
#                LibTorch (a copy of libtorch_cpu without the OpenCV, FFmpeg, GDAL, Qt... that
#                Debian links it to and it never calls: ECGQ_TRIM_LIBTORCH)
#   ecgq-broker  (--target broker) ecgq-broker, ecgq-gateway and ecgq, no LibTorch (about 25
#                libraries); for the network-facing services (broker, gateway) and producers
# The base is debian:bookworm, pulled or made locally by scripts/docker-base (debootstrap).
ARG BASE_IMAGE=debian:bookworm

FROM ${BASE_IMAGE} AS build
COPY scripts/install-deps /src/scripts/install-deps
RUN /src/scripts/install-deps --compile && rm -rf /var/lib/apt/lists/*
COPY . /src
# Only the programs (no tests, no benchmarks), installed in /install: bin/ and, with
# ECGQ_TRIM_LIBTORCH (patchelf is among the compile packages), lib/ecgq/libtorch_cpu.so.1.13, the
# copy of Debian's without the ~230 libraries it links and never calls, which ecgq-worker loads
# through its RUNPATH ($ORIGIN/../lib/ecgq; docs/performance.md, "A trimmed LibTorch").
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DECGQ_BUILD_TESTS=OFF -DECGQ_BUILD_BENCH=OFF -DECGQ_TRIM_LIBTORCH=ON \
 && cmake --build /build --parallel --target ecgq-broker ecgq-worker ecgq ecgq-gateway \
 && cmake --install /build --prefix /install
# Stripped of symbols (after the compile, so that ECGQ_TRIM=0 reuses it).
ARG ECGQ_TRIM=1
RUN if [ "$ECGQ_TRIM" = 1 ]; then \
      strip --strip-unneeded /install/bin/ecgq-broker /install/bin/ecgq-worker /install/bin/ecgq \
        /install/bin/ecgq-gateway; fi

# --- the broker image: ecgq-broker, ecgq-gateway and the producer CLI, no LibTorch ------------
FROM ${BASE_IMAGE} AS broker
# ECGQ_TRIM=0 keeps documentation and every package the libraries depend on, and the symbols
# (to measure what trimming saves: docs/deploy.md).
ARG ECGQ_TRIM=1
COPY scripts/install-deps /tmp/install-deps
COPY --from=build /install/bin/ecgq-broker /install/bin/ecgq-gateway /install/bin/ecgq /usr/local/bin/
# Run-time libraries only, without documentation, manual pages and translations (copyright files
# stay); libsqlite3-0 is the broker's journal, libssl3 the gateway's HTTPS.
RUN if [ "$ECGQ_TRIM" = 1 ]; then \
      printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
        'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/lintian/*' \
        > /etc/dpkg/dpkg.cfg.d/90ecgq-slim; \
    fi \
 && /tmp/install-deps --runtime-broker \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /tmp/install-deps \
 && groupadd --system --gid 10001 ecgq \
 && useradd --system --uid 10001 --gid ecgq --home-dir /var/lib/ecgq --create-home \
      --shell /usr/sbin/nologin ecgq \
 && mkdir -p /cache /journal && chown ecgq:ecgq /cache /journal && chmod 0750 /journal \
 && for b in ecgq-broker ecgq-gateway ecgq; do \
      ! ldd /usr/local/bin/$b | grep "not found" && $b --version >/dev/null; done
COPY config /etc/ecgq
COPY data /opt/ecgq/data
COPY scripts/ecgq-healthcheck /usr/local/bin/ecgq-healthcheck
# The Hugging Face cache is meant for a volume at /cache (compose: model-cache; Kubernetes: a
# PVC), shared by the workers of a host so that a model is downloaded once; the broker's journal
# (issue 11) goes on a volume at /journal. Neither is declared VOLUME: producers and one-off
# commands would each leave an anonymous volume behind.
ENV HF_HOME=/cache/huggingface
# The records the gateway's /ui page offers.
ENV ECGQ_UI_RECORDS=/opt/ecgq/data/ecg
USER ecgq:ecgq
WORKDIR /var/lib/ecgq
EXPOSE 5555 8080
# Broker: answers mmi.status on its bind. Worker: registered with the broker under its own id
# and its model loaded (warm, asleep or waking). Gateway: GET /v2/health/live answers 200.
# Anything else (the producer CLI): healthy.
HEALTHCHECK --interval=10s --timeout=8s --start-period=60s --retries=3 CMD ["ecgq-healthcheck"]
CMD ["ecgq-broker", "--config", "/etc/ecgq/broker.yaml"]
# Labels last, so that a new revision reuses every layer above.
ARG ECGQ_VERSION=unknown
ARG ECGQ_REVISION=unknown
ARG ECGQ_SOURCE=unknown
LABEL org.opencontainers.image.title="ecgq-broker" \
      org.opencontainers.image.description="ecgq's ZeroMQ Majordomo broker, HTTP gateway and producer CLI (no LibTorch)" \
      org.opencontainers.image.version="${ECGQ_VERSION}" \
      org.opencontainers.image.revision="${ECGQ_REVISION}" \
      org.opencontainers.image.source="${ECGQ_SOURCE}" \
      org.opencontainers.image.base.name="debian:bookworm"

# --- the full image: the broker image plus ecgq-worker and LibTorch (the default target) ------
FROM broker AS full
USER root
ARG ECGQ_TRIM=1
COPY scripts/install-deps scripts/trim-image /tmp/
COPY --from=build /install/bin/ecgq-worker /usr/local/bin/
COPY --from=build /install/lib/ecgq /usr/local/lib/ecgq
# Then the packages LibTorch's install pulled in that none of the binaries loads are removed
# (scripts/trim-image: the ldd closure of the binaries decides; docs/deploy.md lists what goes).
RUN dpkg-query -W -f '${Package}\n' > /tmp/base-packages \
 && /tmp/install-deps --runtime \
 && if [ "$ECGQ_TRIM" = 1 ]; then /tmp/trim-image /tmp/base-packages; fi \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
      /tmp/install-deps /tmp/trim-image /tmp/base-packages
# Idle OpenMP threads sleep instead of spinning: several workers share a host's cores here, and
# on shared or oversubscribed hosts spinning costs far more than it saves; on an idle host it
# costs 2-4% (docs/performance.md, thread plan). Read when OpenMP loads, so set here.
ENV OMP_WAIT_POLICY=PASSIVE
USER ecgq:ecgq
ARG ECGQ_VERSION=unknown
ARG ECGQ_REVISION=unknown
ARG ECGQ_SOURCE=unknown
LABEL org.opencontainers.image.title="ecgq" \
      org.opencontainers.image.description="ecgq: ZeroMQ Majordomo broker, LibTorch ECG-FM workers, HTTP gateway and producer CLI" \
      org.opencontainers.image.version="${ECGQ_VERSION}" \
      org.opencontainers.image.revision="${ECGQ_REVISION}" \
      org.opencontainers.image.source="${ECGQ_SOURCE}" \
      org.opencontainers.image.base.name="debian:bookworm"
