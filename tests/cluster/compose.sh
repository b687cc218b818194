# The compose cluster, sourced by scripts/test-cluster. Builds the image from the working tree,
# runs compose.yaml with 3 workers on the demo model, sends the bundled records, then, while a
# second batch runs, kill -9 of a worker container's process and of the broker's (Docker's
# restart policy brings them back, as after a crash), and checks what the producer got.
# The demo model is served by a fake hub on this machine's Docker bridge (fake_hub.py) as
# hf://ecgq-test/demo/demo-random-weights-tiny.pt, so that the shared model cache is exercised:
# three workers and their restarts must make one download and hold one copy.
# Expects from scripts/test-cluster: ROOT, WORK, STATE_DIR, KEEP_ENGINE, CLEANUPS, say, die,
# poll_until, now_ms, secs, unavailable, make_batch, check_results, RECORDS_PER_COPY.

COMPOSE_PROJECT=ecgqtest
DEMO_MODEL="$ROOT/data/models/demo-random-weights-tiny.pt"
HUB_REF=hf://ecgq-test/demo/demo-random-weights-tiny.pt

dk() { "$DOCKER" "$@"; }
dc() { "${COMPOSE[@]}" -p "$COMPOSE_PROJECT" -f "$ROOT/compose.yaml" "${COMPOSE_FILES[@]}" "$@"; }
# Container ids of a service, oldest first.
service_ids() {
  dk ps -q --no-trunc --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" \
    --filter "label=com.docker.compose.service=$1" | sort
}
field() { dk inspect -f "$2" "$1" 2>/dev/null; }
healthy_count() {
  local n=0 id
  for id in $(service_ids "$1"); do
    [[ "$(field "$id" '{{.State.Health.Status}}')" == healthy ]] && n=$((n + 1))
  done
  echo "$n"
}
# Workers the broker lists for ecg-fm (asked from inside the broker container).
broker_workers() {
  local b
  b="$(service_ids broker | head -n1)"
  [[ -n "$b" ]] || { echo 0; return; }
  dk exec "$b" ecgq --broker tcp://127.0.0.1:5555 --timeout 2s status --json 2>/dev/null |
    grep -c '"last_heartbeat_ms"' || true
}
serving() {
  local b
  b="$(service_ids broker | head -n1)"
  [[ -n "$b" ]] && dk exec "$b" ecgq --broker tcp://127.0.0.1:5555 --timeout 2s status --check >/dev/null 2>&1
}
lines() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }

compose_down_check() {
  dc down -v --remove-orphans >"$WORK/down.log" 2>&1 || true
  local left
  left="$(dk ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT")"
  left+="$(dk network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT")"
  left+="$(dk volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT")"
  [[ -z "$left" ]]
}

compose_test() {
  local t0 copies="${ECGQ_CLUSTER_COPIES:-600}" dir="$WORK/compose"
  mkdir -p "$dir"
  DOCKER="$([[ -x /usr/bin/docker ]] && echo /usr/bin/docker || command -v docker || true)"
  say "compose: a Docker engine"
  if [[ -z "$DOCKER" || ! -x /usr/sbin/dockerd ]] && ! "$ROOT/scripts/docker-engine" status; then
    [[ $(id -u) -eq 0 ]] && "$ROOT/scripts/install-deps" --cluster ||
      true
    DOCKER="$([[ -x /usr/bin/docker ]] && echo /usr/bin/docker || command -v docker || true)"
  fi
  local engine
  if ! engine="$("$ROOT/scripts/docker-engine" start)"; then
    unavailable "compose: no Docker engine could be started (scripts/docker-engine start)"
    return 0
  fi
  if [[ "$engine" == started && $KEEP_ENGINE -eq 0 ]]; then
    CLEANUPS=("\"$ROOT/scripts/docker-engine\" stop >/dev/null" "${CLEANUPS[@]}")
  fi
  COMPOSE=()
  if dk compose version >/dev/null 2>&1; then
    COMPOSE=("$DOCKER" compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' (v2) nor docker-compose (v1) is installed (scripts/install-deps --cluster)"
  fi

  say "compose: base image debian:bookworm (scripts/docker-base)"
  t0=$SECONDS
  if ! "$ROOT/scripts/docker-base"; then
    unavailable "compose: no debian:bookworm base image could be had (scripts/docker-base: no registry, no debootstrap mirror)"
    return 0
  fi
  BASE_S=$((SECONDS - t0))

  say "compose: building the image from the working tree (scripts/build-image)"
  t0=$SECONDS
  "$ROOT/scripts/build-image" -q >"$dir/build.log" 2>&1 || {
    tail -n 40 "$dir/build.log" >&2
    die "the image does not build (log above)"
  }
  BUILD_S=$((SECONDS - t0))
  IMAGE_MB="$(dk image inspect -f '{{.Size}}' ecgq:latest | awk '{ printf "%.0f", $1 / 1e6 }')"
  BROKER_IMAGE_MB="$(dk image inspect -f '{{.Size}}' ecgq-broker:latest | awk '{ printf "%.0f", $1 / 1e6 }')"
  # What the images promise: labels, a non-root user, a health check, the probe commands.
  local version image
  version="$(sed -n 's/^project(ecgq VERSION \([0-9][0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")"
  for image in ecgq:latest ecgq-broker:latest; do
    [[ "$(field $image '{{index .Config.Labels "org.opencontainers.image.version"}}')" == "$version" ]] ||
      die "$image: label org.opencontainers.image.version is not $version"
    [[ -n "$(field $image '{{index .Config.Labels "org.opencontainers.image.revision"}}')" ]] ||
      die "$image has no org.opencontainers.image.revision label"
    [[ "$(field $image '{{.Config.User}}')" =~ ^(ecgq|10001) ]] || die "$image does not run as the ecgq user"
    [[ -n "$(field $image '{{.Config.Healthcheck}}')" ]] || die "$image has no HEALTHCHECK"
  done
  dk run --rm --entrypoint /bin/sh ecgq:latest -c '
      set -e; [ "$(id -u)" != 0 ]
      for b in ecgq-broker ecgq-worker ecgq-gateway ecgq; do
        ! ldd /usr/local/bin/$b | grep "not found"; $b --version >/dev/null; done
      ecgq-healthcheck --help >/dev/null; ecgq-worker fetch --help >/dev/null
      ecgq status --help >/dev/null' >"$dir/image-check.log" 2>&1 ||
    die "ecgq image check failed: $(cat "$dir/image-check.log")"
  dk run --rm --entrypoint /bin/sh ecgq-broker:latest -c '
      set -e; [ "$(id -u)" != 0 ]; [ ! -e /usr/local/bin/ecgq-worker ]
      for b in ecgq-broker ecgq-gateway ecgq; do
        ! ldd /usr/local/bin/$b | grep "not found"; $b --version >/dev/null; done
      ecgq-healthcheck --help >/dev/null; ecgq status --help >/dev/null' >"$dir/image-check.log" 2>&1 ||
    die "ecgq-broker image check failed: $(cat "$dir/image-check.log")"

  # The fake hub on the Docker bridge's host address (reachable from the containers only).
  local gw
  gw="$(ip -4 -o addr show docker0 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')"
  [[ -n "$gw" ]] || die "no docker0 bridge address for the fake hub"
  python3 "$ROOT/tests/cluster/fake_hub.py" --bind "$gw" --port-file "$dir/hub.port" \
    --file "$DEMO_MODEL" --repo ecgq-test/demo --path demo-random-weights-tiny.pt 2>"$dir/hub.log" &
  local hub_pid=$!
  CLEANUPS+=("kill $hub_pid 2>/dev/null")
  poll_until 20 "the fake hub to listen" "[[ -s '$dir/hub.port' ]]"
  local hub_port
  hub_port="$(cat "$dir/hub.port")"
  cat >"$dir/compose.test.yaml" <<EOF
# scripts/test-cluster only: the workers reach the fake hub on the host through host-gateway.
services:
  worker:
    extra_hosts:
      - "ecgq-test-hub:host-gateway"
EOF
  COMPOSE_FILES=(-f "$dir/compose.test.yaml")
  if [[ "${ECGQ_CLUSTER_JOURNAL:-}" == 1 ]]; then COMPOSE_FILES+=(-f "$ROOT/compose.journal.yaml"); fi
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  export ECGQ_IMAGE=ecgq:latest ECGQ_BROKER_IMAGE=ecgq-broker:latest ECGQ_CHECKPOINT="$HUB_REF" HF_ENDPOINT="http://ecgq-test-hub:$hub_port" \
    ECGQ_RESULT_CACHE_ENTRIES=0 ECGQ_PUBLISH="127.0.0.1:$port" ECGQ_THREADS=1 ECGQ_IDLE_TIMEOUT=15m
  CLEANUPS+=(compose_down_check)
  compose_down_check || true

  say "compose: up with 3 workers"
  t0=$(now_ms)
  dc up -d --no-build --scale worker=3 >"$dir/up.log" 2>&1 || { cat "$dir/up.log" >&2; die "compose up failed"; }
  poll_until 180 "3 healthy workers" '[[ $(healthy_count worker) -eq 3 ]]'
  UP_MS=$(( $(now_ms) - t0 ))
  local workers
  workers=($(service_ids worker))
  [[ ${#workers[@]} -eq 3 ]] || die "expected 3 worker containers, found ${#workers[@]}"

  say "compose: batch 1, the bundled records through the producer service"
  dc run -T --rm producer submit /opt/ecgq/data/ecg >"$dir/batch1.jsonl" 2>"$dir/batch1.err" ||
    die "batch 1 failed: $(tail -n 5 "$dir/batch1.err")"
  local sha
  sha="$(sha256sum "$DEMO_MODEL" | cut -d' ' -f1)"
  check_results "$dir/batch1.jsonl" "$ROOT/data/ecg" "$RECORDS_PER_COPY" "compose batch 1" /opt/ecgq/data/ecg/ "$sha"
  [[ $CHECK_OK -eq $RECORDS_PER_COPY ]] || die "batch 1: $CHECK_OK of $RECORDS_PER_COPY ok"
  local batch1_ok=$CHECK_OK

  say "compose: batch 2 ($((copies * RECORDS_PER_COPY)) records) with kill -9 of a worker, then of the broker"
  make_batch "$dir/batch" "$copies"
  local total=$((copies * RECORDS_PER_COPY)) out="$dir/batch2.jsonl"
  # --job-timeout: a job the killed broker forgot is reported (error timeout) instead of
  # holding its window slot until the producer's --timeout gives the whole batch up.
  dc run -T --rm -v "$dir/batch:/batch:ro" producer --timeout 120s \
    submit --window 16 --job-timeout 20s /batch >"$out" 2>"$dir/batch2.err" &
  local producer=$!
  CLEANUPS+=("kill $producer 2>/dev/null")
  poll_until 120 "batch 2 under way" "[[ \$(lines '$out') -ge $((total / 10)) ]]"

  local victim="${workers[0]}" restarts pid t_kill
  restarts="$(field "$victim" '{{.RestartCount}}')"
  pid="$(field "$victim" '{{.State.Pid}}')"
  KILL_WORKER_AT=$(lines "$out")
  t_kill=$(now_ms)
  kill -KILL "$pid"
  poll_until 60 "the killed worker container running again" \
    "[[ \$(field $victim '{{.RestartCount}}') -gt $restarts && \$(field $victim '{{.State.Running}}') == true ]]"
  WORKER_RESTART_MS=$(( $(now_ms) - t_kill ))

  local broker
  broker="$(service_ids broker | head -n1)"
  poll_until 120 "batch 2 at 30%" "[[ \$(lines '$out') -ge $((total * 3 / 10)) ]]"
  KILL_BROKER_AT=$(lines "$out")
  [[ $KILL_BROKER_AT -lt $total ]] || die "batch 2 ended before the broker kill (raise ECGQ_CLUSTER_COPIES)"
  restarts="$(field "$broker" '{{.RestartCount}}')"
  pid="$(field "$broker" '{{.State.Pid}}')"
  t_kill=$(now_ms)
  kill -KILL "$pid"
  poll_until 60 "the broker container running again" \
    "[[ \$(field $broker '{{.RestartCount}}') -gt $restarts && \$(field $broker '{{.State.Running}}') == true ]]"
  BROKER_RESTART_MS=$(( $(now_ms) - t_kill ))
  poll_until 60 "the broker serving again (status --check)" serving
  BROKER_SERVING_MS=$(( $(now_ms) - t_kill ))
  poll_until 90 "3 workers registered again" '[[ $(broker_workers) -ge 3 ]]'
  WORKERS_BACK_MS=$(( $(now_ms) - t_kill ))

  local rc=0
  wait "$producer" || rc=$?
  check_results "$out" "$dir/batch" "$total" "compose batch 2" /batch/ "$sha"
  local ok=$CHECK_OK errors=$CHECK_ERRORS codes
  codes="$(sed -n 's/.* codes=\([^ ]*\) .*/\1/p' <<<"$CHECK_LINE")"
  # The producer rides through the broker's restart (issue 11): accepted jobs are taken over by
  # id, the others sent again; with or without the journal every record must come back ok.
  [[ $ok -eq $total ]] || die "batch 2: $ok of $total ok after the kills ($codes)"
  [[ $ok -gt 0 ]] || die "batch 2: nothing ok"

  say "compose: the workers back, the model cache shared"
  poll_until 120 "3 healthy workers after the kills" '[[ $(healthy_count worker) -eq 3 ]]'
  local vols=() id
  for id in "${workers[@]}"; do
    vols+=("$(field "$id" '{{range .Mounts}}{{if eq .Destination "/cache"}}{{.Name}}{{end}}{{end}}')")
  done
  [[ -n "${vols[0]}" && "${vols[0]}" == "${vols[1]}" && "${vols[1]}" == "${vols[2]}" ]] ||
    die "the workers do not share one model-cache volume: ${vols[*]}"
  local gets blobs
  gets="$(python3 -c "import json, urllib.request; print(json.load(urllib.request.urlopen('http://$gw:$hub_port/_stats'))['content_gets'])")"
  blobs="$(dk run --rm --entrypoint /bin/sh -v "${vols[0]}:/cache:ro" ecgq:latest -c \
    'find /cache -path "*/blobs/*" -type f | wc -l')"
  [[ "$gets" -eq 1 && "$blobs" -eq 1 ]] ||
    die "model cache: $gets downloads and $blobs copies for 3 workers and their restarts (want 1 and 1)"

  # Memory of the broker and a worker after the batches (demo model: the worker's is LibTorch's
  # baseline plus a tiny model; docs/performance.md has the full model's).
  MEM="$(dk stats --no-stream --format '{{.MemUsage}}' "$(service_ids broker | head -n1)" "${workers[1]}" |
    awk '{ print $1 }' | paste -sd/)"

  say "compose: down"
  t0=$(now_ms)
  compose_down_check || die "compose down left containers, networks or volumes of $COMPOSE_PROJECT"
  DOWN_MS=$(( $(now_ms) - t0 ))
  COMPOSE_SUMMARY="compose: images ecgq ${IMAGE_MB} MB and ecgq-broker ${BROKER_IMAGE_MB} MB built in ${BUILD_S} s (base ${BASE_S} s), up ${#workers[@]} workers in $(secs $UP_MS) s, batch 1 $batch1_ok/$RECORDS_PER_COPY ok, batch 2 $total answered exactly once, all ok through the kills, worker kill -9 at $KILL_WORKER_AT -> running in $(secs $WORKER_RESTART_MS) s, broker kill -9 at $KILL_BROKER_AT -> running in $(secs $BROKER_RESTART_MS) s, serving in $(secs $BROKER_SERVING_MS) s, 3 workers back in $(secs $WORKERS_BACK_MS) s, model downloads $gets, copies $blobs, memory broker/worker $MEM, down in $(secs $DOWN_MS) s"
  say "$COMPOSE_SUMMARY"
}
