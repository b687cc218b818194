# Workers on other hosts, sourced by scripts/test-cluster (needs root and iproute2; no Docker).
# Four network hosts on this machine, each a Linux network namespace with one veth link to a
# switch (a bridge in a fifth namespace): A runs the broker, B and C a worker each, P the
# producer. Each program reaches the broker only through A's address on the link (the broker binds
# that address alone; there is no loopback path between namespaces). While a batch runs, B's
# link is cut at the switch (`ip link set down`, a pulled cable: B is not told); the broker
# expires B after heartbeat_interval x heartbeat_liveness and re-dispatches B's jobs to C.
# Then the link comes back and B re-registers.
# Expects from scripts/test-cluster: ROOT, BIN, WORK, say, die, poll_until, now_ms, check_results.

HOSTS_NET=10.231.77          # only inside the namespaces below; no route leads out of them
HOSTS_NS=(ecgqt-sw ecgqt-a ecgqt-b ecgqt-c ecgqt-p)
HOSTS_PIDS=()

# Security flags in one place (docs/security.md): CURVE, with keys made by hosts_keys under
# $WORK/hosts/keys; the broker refuses a plaintext bind on A's (non-loopback) address.
hosts_broker_security=()
hosts_worker_security=()
hosts_producer_security=()

# Makes the broker, worker and producer certificates and fills the flags above.
hosts_keys() {
  local k="$1/keys" name
  mkdir -p "$k/clients" "$k/workers"
  for name in broker worker producer; do
    [[ -f "$k/$name.cert_secret" ]] || "$BIN/ecgq" keygen "$k/$name.cert" >/dev/null
  done
  cp "$k/producer.cert" "$k/clients/"
  cp "$k/worker.cert" "$k/workers/"
  hosts_broker_security=(--curve-secret-cert "$k/broker.cert_secret" --client-keys "$k/clients"
    --worker-keys "$k/workers")
  hosts_worker_security=(--curve-cert "$k/worker.cert_secret" --broker-key "$k/broker.cert")
  hosts_producer_security=(--curve-cert "$k/producer.cert_secret" --broker-key "$k/broker.cert")
}

hosts_cleanup() {
  local pid ns
  for pid in "${HOSTS_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${HOSTS_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  HOSTS_PIDS=()
  for ns in "${HOSTS_NS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

# hosts_add NS ADDRESS: a host on the switch, with its link named after it on the switch side.
hosts_add() {
  local ns="$1" addr="$2" port="sw-${1#ecgqt-}"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add eth0 netns "$ns" type veth peer name "$port" netns ecgqt-sw
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n ecgqt-sw link set "$port" master br0
  ip -n ecgqt-sw link set "$port" up
}

# The worker's entry in `ecgq status --json` of the broker (state in_flight), "absent" if none.
hosts_worker() {
  ip netns exec ecgqt-p "$BIN/ecgq" --broker "tcp://$HOSTS_NET.1:5555" "${hosts_producer_security[@]}" \
    --timeout 3s status --json 2>/dev/null | awk -v id="$1" '
      /^  "[^"]+":/ { cur = "" }
      /"id": / { v = $2; gsub(/[",]/, "", v); cur = v }
      cur == id && f == "" && /"in_flight": / { f = $2; gsub(/,/, "", f) }
      cur == id && s == "" && /"state": / { s = $2; gsub(/[",]/, "", s) }
      END { if (s == "") print "absent"; else print s, f }'
}
hosts_counter() {
  ip netns exec ecgqt-p "$BIN/ecgq" --broker "tcp://$HOSTS_NET.1:5555" "${hosts_producer_security[@]}" \
    --timeout 3s status --json 2>/dev/null | awk -v k="$1" '
      $1 == "\"" k "\":" { v = $2; gsub(/,/, "", v); print v; exit }'
}

hosts_test() {
  local copies="${ECGQ_HOSTS_COPIES:-150}" dir="$WORK/hosts" t0 n total
  say "workers on other hosts: network namespaces A (broker), B and C (workers), P (producer)"
  command -v ip >/dev/null || die "ip (iproute2) is missing: scripts/install-deps --cluster"
  hosts_cleanup
  ip netns add ecgqt-sw || die "cannot create network namespaces (needs root and CAP_SYS_ADMIN)"
  ip -n ecgqt-sw link set lo up
  ip -n ecgqt-sw link add br0 type bridge
  ip -n ecgqt-sw link set br0 up
  hosts_add ecgqt-a "$HOSTS_NET.1"
  hosts_add ecgqt-b "$HOSTS_NET.2"
  hosts_add ecgqt-c "$HOSTS_NET.3"
  hosts_add ecgqt-p "$HOSTS_NET.10"
  mkdir -p "$dir"
  hosts_keys "$dir"
  make_batch "$dir/records" "$copies"
  total=$((copies * RECORDS_PER_COPY))

  t0=$(now_ms)
  # The broker binds only its host's address: nothing reaches it over loopback.
  ip netns exec ecgqt-a "$BIN/ecgq-broker" --bind "tcp://$HOSTS_NET.1:5555" --result-cache-entries 0 \
    "${hosts_broker_security[@]}" >"$dir/broker.log" 2>&1 &
  HOSTS_PIDS+=($!)
  local h
  for h in b c; do
    ip netns exec "ecgqt-$h" "$BIN/ecgq-worker" serve --broker "tcp://$HOSTS_NET.1:5555" \
      --worker-id "host-$h" --checkpoint "$ROOT/data/models/demo-random-weights-tiny.pt" \
      --threads 1 --idle-timeout 15m "${hosts_worker_security[@]}" >"$dir/worker-$h.log" 2>&1 &
    HOSTS_PIDS+=($!)
  done
  poll_until 60 "workers B and C warm" \
    '[[ "$(hosts_worker host-b)" == warm* && "$(hosts_worker host-c)" == warm* ]]'
  # Each worker's connection is to A's address, from its own host's address.
  ip netns exec ecgqt-a ss -Htn state established "( sport = :5555 )" >"$dir/connections"
  grep -q "$HOSTS_NET.1:5555 *$HOSTS_NET.2:" "$dir/connections" &&
    grep -q "$HOSTS_NET.1:5555 *$HOSTS_NET.3:" "$dir/connections" ||
    die "the broker on A has no connection from B's and C's addresses: $(cat "$dir/connections")"

  # The producer on P; --job-timeout only bounds the test (nothing is lost here).
  ip netns exec ecgqt-p "$BIN/ecgq" --broker "tcp://$HOSTS_NET.1:5555" "${hosts_producer_security[@]}" \
    submit --window 16 --job-timeout 60s "$dir/records" >"$dir/results.jsonl" 2>"$dir/producer.log" &
  local producer=$!
  HOSTS_PIDS+=($producer)
  # Cut B's link once B holds jobs and some results are in.
  poll_until 60 "B busy with jobs" \
    '[[ $(wc -l <"$dir/results.jsonl") -ge $((total / 10)) && "$(hosts_worker host-b)" =~ ^[a-z]+\ [1-9] ]]'
  local before_cut redispatched_before t_cut
  redispatched_before="$(hosts_counter redispatched)"
  before_cut=$(wc -l <"$dir/results.jsonl")
  [[ $before_cut -lt $total ]] || die "the batch finished before B's link was cut (raise ECGQ_HOSTS_COPIES)"
  t_cut=$(now_ms)
  ip -n ecgqt-sw link set sw-b down
  poll_until 30 "the broker expiring B" '[[ "$(hosts_worker host-b)" == absent ]]'
  HOSTS_EXPIRY_MS=$(( $(now_ms) - t_cut ))
  local rc=0
  wait "$producer" || rc=$?
  HOSTS_PIDS=("${HOSTS_PIDS[@]/$producer}")
  HOSTS_REDISPATCHED=$(( $(hosts_counter redispatched) - redispatched_before ))
  ip -n ecgqt-sw link set sw-b up
  t_cut=$(now_ms)
  poll_until 60 "B re-registering after its link is back" '[[ "$(hosts_worker host-b)" == warm* ]]'
  HOSTS_BACK_MS=$(( $(now_ms) - t_cut ))
  HOSTS_MS=$(( $(now_ms) - t0 ))
  check_results "$dir/results.jsonl" "$dir/records" "$total" hosts
  [[ $rc -eq 0 && $CHECK_OK -eq $total ]] ||
    die "hosts: $CHECK_OK of $total records ok after B's link was cut (producer exit $rc): $(tail -n 3 "$dir/producer.log")"
  [[ $HOSTS_REDISPATCHED -ge 1 ]] || die "hosts: the broker re-dispatched nothing after B's link was cut"
  local by_b_after
  HOSTS_BY_C=$(grep -c '"worker": *"host-c"' "$dir/results.jsonl" || true)
  HOSTS_BY_B=$(grep -c '"worker": *"host-b"' "$dir/results.jsonl" || true)
  HOSTS_SUMMARY="hosts: $total/$total ok exactly once (B $HOSTS_BY_B, C $HOSTS_BY_C), link cut after $before_cut, B expired in $(secs "$HOSTS_EXPIRY_MS") s, $HOSTS_REDISPATCHED re-dispatched to C, B back in $(secs "$HOSTS_BACK_MS") s, $(secs "$HOSTS_MS") s"
  say "$HOSTS_SUMMARY"
  hosts_cleanup
}
