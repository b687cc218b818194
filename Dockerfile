# ecgq on Debian bookworm: one image for the broker, the workers, the producer CLI and the gateway.
FROM debian:bookworm AS build
COPY scripts/install-deps /src/scripts/install-deps
RUN /src/scripts/install-deps
COPY . /src
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DECGQ_BUILD_TESTS=OFF -DECGQ_BUILD_BENCH=OFF \
 && cmake --build /build --parallel

FROM debian:bookworm
COPY scripts/install-deps /opt/ecgq/scripts/install-deps
RUN /opt/ecgq/scripts/install-deps --runtime && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/ecgq-broker /build/bin/ecgq-worker /build/bin/ecgq /build/bin/ecgq-gateway /usr/local/bin/
COPY config /etc/ecgq
COPY data /opt/ecgq/data
# The Hugging Face cache lives on a volume so that downloads survive restarts and sleep.
ENV HF_HOME=/cache/huggingface
# Idle OpenMP threads sleep instead of spinning: several workers share a host's cores here, and
# on shared or oversubscribed hosts spinning costs far more than it saves; on an idle host it
# costs 2-4% (docs/performance.md, thread plan). Read when OpenMP loads, so set here.
ENV OMP_WAIT_POLICY=PASSIVE
VOLUME /cache
EXPOSE 5555
CMD ["ecgq-broker", "--config", "/etc/ecgq/broker.yaml"]
